/** A TOTP code as the gateway takes it: six digits (for the inputs' pattern attribute). */
export const CODE_PATTERN = '[0-9]{6}';

/** Passwords shorter than this are refused by the gateway. */
export const MIN_PASSWORD = 12;
