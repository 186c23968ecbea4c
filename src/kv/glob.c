/* Glob matching as Redis's stringmatchlen (util.c), without its recursion. */
#include "kv/glob.h"

/* Matches c against the class starting at pattern[*pi] == '['; moves *pi
 * past the class. An unterminated class ends with the pattern, as in Redis. */
static bool class_match(const char *pattern, size_t len, size_t *pi, char c)
{
    size_t i = *pi + 1;
    bool negate = false, match = false;

    if (i < len && pattern[i] == '^') {
        negate = true;
        i++;
    }
    while (i < len && pattern[i] != ']') {
        if (pattern[i] == '\\' && i + 1 < len) {
            i++;
            if (pattern[i] == c)
                match = true;
        } else if (i + 2 < len && pattern[i + 1] == '-') {
            unsigned char lo = (unsigned char)pattern[i], hi = (unsigned char)pattern[i + 2];
            if (lo > hi) {
                unsigned char t = lo;
                lo = hi;
                hi = t;
            }
            if ((unsigned char)c >= lo && (unsigned char)c <= hi)
                match = true;
            i += 2;
        } else if (pattern[i] == c) {
            match = true;
        }
        i++;
    }
    *pi = i < len ? i + 1 : len;
    return negate ? !match : match;
}

bool kv_glob_match(const char *pattern, size_t pattern_len, const char *s, size_t len)
{
    size_t pi = 0, si = 0;
    size_t star_pi = 0, star_si = 0;
    bool have_star = false;

    while (si < len) {
        if (pi < pattern_len) {
            char c = pattern[pi];
            size_t next = pi;
            if (c == '*') {
                while (pi < pattern_len && pattern[pi] == '*')
                    pi++;
                have_star = true;
                star_pi = pi;
                star_si = si;
                continue;
            }
            if (c == '?') {
                pi++;
                si++;
                continue;
            }
            if (c == '[') {
                if (class_match(pattern, pattern_len, &next, s[si])) {
                    pi = next;
                    si++;
                    continue;
                }
            } else if (c == '\\' && pi + 1 < pattern_len) {
                if (pattern[pi + 1] == s[si]) {
                    pi += 2;
                    si++;
                    continue;
                }
            } else if (c == s[si]) {
                pi++;
                si++;
                continue;
            }
        }
        /* A mismatch: let the last star swallow one more byte. */
        if (!have_star)
            return false;
        pi = star_pi;
        si = ++star_si;
    }
    while (pi < pattern_len && pattern[pi] == '*')
        pi++;
    return pi == pattern_len;
}
