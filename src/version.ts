/** The API's version, as package.json and the OpenAPI document give it (a test keeps them equal). */
export const APP_VERSION = '0.1.0'
