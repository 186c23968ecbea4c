/* libFuzzer target for the membership change decoder.
 *
 * Decodes arbitrary bytes; the sanitizers catch any out-of-bounds read. When
 * decoding succeeds, the value must re-encode to exactly the input (the format
 * has one encoding per value) and decode again to the same value.
 *
 *   clang -std=c11 -g -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
 *       tests/fuzz/fuzz_conf_change.c src/raft/conf_state.c -o fuzz_conf_change
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "craft/raft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int condition)
{
    if (!condition) {
        abort();
    }
}

static int change_equal(const struct craft_conf_change *a, const struct craft_conf_change *b)
{
    if (a->transition != b->transition || a->n_changes != b->n_changes) {
        return 0;
    }
    for (uint32_t i = 0; i < a->n_changes; i++) {
        if (a->changes[i].type != b->changes[i].type ||
            a->changes[i].node_id != b->changes[i].node_id) {
            return 0;
        }
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct craft_conf_change cc, again;
    uint8_t buf[4 + CRAFT_MAX_CONF_CHANGES * 9];

    int rc = craft_conf_change_decode(&cc, data, size);
    if (rc != CRAFT_OK) {
        check(rc == CRAFT_ECORRUPT);
        return 0;
    }

    size_t expect = craft_conf_change_size(&cc);
    check(expect == size && expect <= sizeof(buf));
    int n = craft_conf_change_encode(&cc, buf, sizeof(buf));
    check(n >= 0 && (size_t)n == size);
    check(memcmp(buf, data, size) == 0);

    check(craft_conf_change_decode(&again, buf, (size_t)n) == CRAFT_OK);
    check(change_equal(&cc, &again));
    return 0;
}
