const TWELVE_DIGITS = /^\d{12}$/;
const THIRTEEN_DIGITS = /^\d{13}$/;
const CARD_NUMBER = /^\d{1,12}$/;

/** GS1 mod-10 over the first 12 characters, assumed to be digits. */
function checkDigitOf(digits: string): number {
  let sum = 0;
  for (let i = 0; i < 12; i++) sum += (digits.charCodeAt(i) - 48) * (i % 2 === 0 ? 1 : 3);
  return (10 - (sum % 10)) % 10;
}

/** The GS1 mod-10 check digit of the first 12 digits of an EAN-13 (weights 1 and 3 from the left), to build codes. */
export function ean13CheckDigit(first12: string): number {
  if (!TWELVE_DIGITS.test(first12)) throw new RangeError(`Not 12 digits: "${first12}"`);
  return checkDigitOf(first12);
}

/** Whether a code is 13 digits with a correct GS1 check digit, to catch mistyped barcodes. */
export function isValidEan13(code: string): boolean {
  return THIRTEEN_DIGITS.test(code) && checkDigitOf(code) === code.charCodeAt(12) - 48;
}

/** The EAN-13 of a numeric card number of 1 to 12 digits (zero-padded, check digit appended), else null. */
export function uidToEan13(uid: string): string | null {
  if (!CARD_NUMBER.test(uid)) return null;
  const body = uid.padStart(12, "0");
  return body + checkDigitOf(body);
}

/** A restricted-circulation (in-store, prefix 2) EAN-13 for sequence number n, so issued cards never clash with products. */
export function inStoreEan13(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0 || n >= 1e11) throw new RangeError(`No in-store EAN-13 for ${n}`);
  const body = "2" + String(n).padStart(11, "0");
  return body + checkDigitOf(body);
}
