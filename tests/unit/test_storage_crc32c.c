/* CRC32C: the hardware and table implementations against known vectors
 * (RFC 3720 appendix B.4) and against each other. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "storage/crc32c.h"

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

static void check_vectors(crc_fn fn)
{
    uint8_t buf[32];
    assert_int_equal(fn(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(fn(0, "", 0), 0);
    memset(buf, 0, sizeof(buf));
    assert_int_equal(fn(0, buf, 32), 0x8a9136aau);
    memset(buf, 0xff, sizeof(buf));
    assert_int_equal(fn(0, buf, 32), 0x62a8ab43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    assert_int_equal(fn(0, buf, 32), 0x46dd794eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    assert_int_equal(fn(0, buf, 32), 0x113fdb5cu);
}

static void test_table_matches_known_vectors(void **state)
{
    (void)state;
    check_vectors(crc32c_sw);
}

static void test_hardware_matches_known_vectors(void **state)
{
    (void)state;
    if (!crc32c_hw_available())
        skip();
    check_vectors(crc32c_hw);
}

static void test_dispatch_matches_known_vectors(void **state)
{
    (void)state;
    check_vectors(crc32c);
}

/* Every length and alignment, and split into two calls: all three agree. */
static void test_implementations_agree_at_any_alignment_and_split(void **state)
{
    (void)state;
    uint8_t buf[300];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t start = 0; start < 9; start++) {
        for (size_t len = 0; start + len <= sizeof(buf); len += 13) {
            uint32_t whole = crc32c_sw(0, buf + start, len);
            size_t half = len / 3;
            assert_int_equal(
                crc32c_sw(crc32c_sw(0, buf + start, half), buf + start + half, len - half), whole);
            assert_int_equal(crc32c(0, buf + start, len), whole);
            if (crc32c_hw_available()) {
                assert_int_equal(crc32c_hw(0, buf + start, len), whole);
                assert_int_equal(
                    crc32c_hw(crc32c_hw(0, buf + start, half), buf + start + half, len - half),
                    whole);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_matches_known_vectors),
        cmocka_unit_test(test_hardware_matches_known_vectors),
        cmocka_unit_test(test_dispatch_matches_known_vectors),
        cmocka_unit_test(test_implementations_agree_at_any_alignment_and_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
