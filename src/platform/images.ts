import sharp from 'sharp'
import { InvalidInputError, UnavailableError, UnsupportedMediaTypeError } from '../errors.js'

export const PICTURE_SIZE = 512
/** Refuse images whose pixel count would make decoding a memory bomb (about 50 megapixels). */
export const MAX_INPUT_PIXELS = 50_000_000
/** Decoding and re-encoding one picture may take this long; past it, the work stops. */
export const PICTURE_TIMEOUT_SECONDS = 10

/** A raster format a phone produces, as sharp's metadata names it. */
type PictureFormat = 'jpeg' | 'png' | 'webp' | 'heif'

/**
 * HEIC and AVIF share sharp's "heif" loader, present or not depending on how sharp was built.
 * With it, AVIF (AV1) always decodes; HEIC (HEVC) only where libheif has an HEVC decoder, which
 * sharp's prebuilt binaries lack: such a HEIC answers 415 when its decoding is refused.
 */
const heifReadable = sharp.format.heif?.input.buffer === true

/** The formats accepted, by name, for documentation and for the answer to anything else. */
export const PICTURE_FORMATS: readonly string[] = ['JPEG', 'PNG', 'WebP', ...(heifReadable ? ['AVIF'] : [])]
/** The media types of a raw body that the formats above come as (documentation only: the bytes decide). */
export const PICTURE_MEDIA_TYPES: readonly string[] = ['image/jpeg', 'image/png', 'image/webp', ...(heifReadable ? ['image/avif'] : [])]

/** ISO-BMFF brands of HEIC and AVIF images (the `ftyp` box at the start of the file). */
const HEIF_BRANDS = new Set(['heic', 'heix', 'heim', 'heis', 'hevc', 'hevx', 'mif1', 'msf1', 'avif', 'avis'])

/**
 * The format the file's first bytes announce, if it is one we take; never its name or declared
 * type. Checked before sharp sees the file, so no other decoder (SVG, PDF, GIF, TIFF...) runs.
 */
function sniff(input: Buffer): PictureFormat | undefined {
  if (input.length >= 3 && input[0] === 0xff && input[1] === 0xd8 && input[2] === 0xff) return 'jpeg'
  if (input.length >= 8 && input.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'png'
  if (input.length >= 12 && input.toString('latin1', 0, 4) === 'RIFF' && input.toString('latin1', 8, 12) === 'WEBP') return 'webp'
  if (heifReadable && input.length >= 12 && input.toString('latin1', 4, 8) === 'ftyp' && HEIF_BRANDS.has(input.toString('latin1', 8, 12))) return 'heif'
  return undefined
}

const unsupported = (why = 'this file is none of them') =>
  new UnsupportedMediaTypeError(`The picture must be a ${PICTURE_FORMATS.join(', ')} image; ${why}`, 'unsupported_image_format')

const unreadable = () =>
  new InvalidInputError(`The file is not a ${PICTURE_FORMATS.join(', ')} image we can read`, [{ field: 'picture', message: 'is not an image' }], 'not_an_image')

/**
 * Re-encodes an uploaded picture as a 512 px square WebP: the EXIF orientation applied, then
 * cropped to a square around what draws the eye, first frame only. Nothing of the original file
 * survives but its pixels: no EXIF (GPS included), no ICC profile, no XMP, no trailing bytes.
 *
 * Only JPEG, PNG, WebP (and AVIF, or HEIC, when sharp reads them) get in, told by their bytes: other
 * formats answer 415 before any decoder runs. Decoding is bounded by MAX_INPUT_PIXELS and by
 * PICTURE_TIMEOUT_SECONDS of work.
 */
export async function toProfilePicture(input: Buffer): Promise<Buffer> {
  const sniffed = sniff(input)
  if (!sniffed) throw unsupported()
  const options = { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'error', animated: false } as const
  let format: string | undefined
  let compression: string | undefined
  try {
    ;({ format, compression } = await sharp(input, options).metadata())
  } catch (error) {
    throw readError(error, sniffed)
  }
  // sharp picks its decoder from the bytes too; it must be the one the first bytes announced.
  if (format !== sniffed) throw unsupported()
  if (format === 'heif' && compression !== 'hevc' && compression !== 'av1') throw unsupported()
  try {
    return await sharp(input, options)
      .timeout({ seconds: PICTURE_TIMEOUT_SECONDS })
      .rotate() // apply the EXIF orientation before the EXIF goes
      .resize(PICTURE_SIZE, PICTURE_SIZE, { fit: 'cover', position: 'attention' })
      .webp({ quality: 82 })
      .toBuffer()
  } catch (error) {
    throw readError(error, sniffed)
  }
}

/** What a failure to read an accepted format means to the client. */
function readError(error: unknown, format: PictureFormat): Error {
  const reason = error instanceof Error ? error.message : String(error)
  if (/pixel limit/i.test(reason)) {
    return new InvalidInputError(`The image has more than ${MAX_INPUT_PIXELS} pixels`, [{ field: 'picture', message: 'has too many pixels' }], 'image_too_large')
  }
  if (/timeout/i.test(reason)) {
    return new UnavailableError(`Reading the image took more than ${PICTURE_TIMEOUT_SECONDS} s; try again, or send a smaller image`, 'image_timeout')
  }
  // A HEIC whose codec this build of libheif lacks (HEVC, often) is a format we can't take here.
  if (format === 'heif' && /plugin|unsupported|compression/i.test(reason)) return unsupported('this server can\'t decode this HEIC')
  return unreadable()
}
