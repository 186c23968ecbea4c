/* Redis's glob patterns (KEYS, SCAN MATCH): '*' any run, '?' any byte,
 * '[abc]', '[^a]', '[a-z]' classes, '\' escapes the next byte. Byte-exact,
 * case-sensitive; iterative, so a hostile pattern costs at most
 * O(pattern x string) and never recurses. */
#ifndef CRAFT_KV_GLOB_H
#define CRAFT_KV_GLOB_H

#include <stdbool.h>
#include <stddef.h>

bool kv_glob_match(const char *pattern, size_t pattern_len, const char *s, size_t len);

#endif /* CRAFT_KV_GLOB_H */
