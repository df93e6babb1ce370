import sharp from 'sharp'
import { InvalidInputError } from '../errors.js'

export const PICTURE_SIZE = 512
/** Refuse images whose pixel count would make decoding a memory bomb (about 50 megapixels). */
const MAX_INPUT_PIXELS = 50_000_000

/**
 * Re-encodes an uploaded picture as a square WebP. Nothing of the original file survives but its
 * pixels: no EXIF (GPS included), no ICC comments, no trailing bytes.
 */
export async function toProfilePicture(input: Buffer): Promise<Buffer> {
  try {
    return await sharp(input, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'error', animated: false })
      .rotate() // apply the EXIF orientation before the EXIF goes
      .resize(PICTURE_SIZE, PICTURE_SIZE, { fit: 'cover', position: 'attention' })
      .webp({ quality: 82 })
      .toBuffer()
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error)
    const tooBig = /pixel limit/i.test(reason)
    throw new InvalidInputError(
      tooBig ? `The image has more than ${MAX_INPUT_PIXELS} pixels` : 'The file is not an image we can read (JPEG, PNG, WebP, GIF, AVIF, TIFF)',
      [{ field: 'picture', message: tooBig ? 'has too many pixels' : 'is not an image' }],
      tooBig ? 'image_too_large' : 'not_an_image',
    )
  }
}
