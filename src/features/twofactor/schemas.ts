import { Type } from 'typebox'

const Code = Type.String({ pattern: '^[0-9]{6}$', description: 'The 6-digit code the authenticator app shows now' })
const RecoveryCode = Type.String({ minLength: 1, maxLength: 40, description: 'One of the recovery codes, as shown (`abcde-fghjk`); any case, dash optional' })

export const TwoFactorStatus = Type.Object(
  {
    enabled: Type.Boolean(),
    recovery_codes_left: Type.Integer({ description: 'Recovery codes not used yet' }),
  },
  { examples: [{ enabled: true, recovery_codes_left: 9 }] },
)

export const TwoFactorSetup = Type.Object(
  {
    secret: Type.String({ description: 'Base32 secret, for typing into an authenticator app by hand' }),
    otpauth_uri: Type.String({ description: 'The same as an `otpauth://totp/` URI: show it as a QR code' }),
  },
  { examples: [{ secret: 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP', otpauth_uri: 'otpauth://totp/Freelancer:ana%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Freelancer&algorithm=SHA1&digits=6&period=30' }] },
)

export const ConfirmBody = Type.Object({ code: Code }, { additionalProperties: false, examples: [{ code: '492039' }] })

export const RecoveryCodes = Type.Object(
  { recovery_codes: Type.Array(Type.String(), { description: 'Ten codes, each good for one sign-in without the app. Shown this once: keep them somewhere safe' }) },
  { examples: [{ recovery_codes: ['k7dpe-2xqrm', 'a9tfw-m3hcv', 'p2zbn-8vsje', 'x4wqr-t7kdf', 'h6mca-9pzet', 'r3vjs-b8nqw', 'e5kxd-2mhtp', 'w8fcn-6ryaz', 'n2pqt-4gjvk', 'c9hmw-5xesb'] }] },
)

export const DisableBody = Type.Object(
  {
    code: Type.Optional(Code),
    password: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'The account\'s password, instead of a code' })),
  },
  { additionalProperties: false, examples: [{ code: '492039' }] },
)

export const MfaBody = Type.Object(
  {
    mfa_token: Type.String({ minLength: 1, maxLength: 200, description: 'From the 401 `mfa_required` answer of the sign-in' }),
    code: Type.Optional(Code),
    recovery_code: Type.Optional(RecoveryCode),
  },
  { additionalProperties: false, description: 'Either `code` or `recovery_code`', examples: [{ mfa_token: 'Zr2bC1x3lqT9aWdE8yV0mK4nP7sH6uJ5gF2oR1iQ0cA', code: '492039' }] },
)
