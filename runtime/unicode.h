/* UTF-8 helpers and the GPT-2 byte-level mapping (bytes_to_unicode) used by tokenizers. */
#ifndef LM_UNICODE_H
#define LM_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length (1..4) of the well-formed UTF-8 sequence at s[0..n), 0 if it is not one
 * (bad lead byte, truncated, overlong, surrogate, above U+10FFFF). *cp gets the code
 * point when cp is not NULL. The same rules as PCRE2's UTF check. */
int lm_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Encode cp (<= U+10FFFF) into out (4 bytes room); returns the length. */
int lm_utf8_encode(uint32_t cp, char *out);
/* True when all n bytes are well-formed UTF-8. */
bool lm_utf8_valid(const char *s, size_t n);

/* GPT-2 bytes_to_unicode: every byte maps to a printable code point (printable ASCII and
 * Latin-1 map to themselves; the rest to U+0100..U+0143). */
uint32_t lm_byte_to_unicode(uint8_t b);
/* Inverse of lm_byte_to_unicode; -1 for code points outside the mapping. */
int lm_unicode_to_byte(uint32_t cp);

#endif
