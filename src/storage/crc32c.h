/* CRC32C (Castagnoli), the checksum of WAL records, segment headers and
 * snapshot files. The SSE4.2 instruction is used when the CPU has it, a
 * slicing-by-8 table otherwise; both give the same values. */
#ifndef CRAFT_STORAGE_CRC32C_H
#define CRAFT_STORAGE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) with len bytes; crc32c(0, "123456789", 9) is 0xe3069283. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* The two implementations, for tests. crc32c_hw is only callable when
 * crc32c_hw_available() is true. */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);
uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len);
int crc32c_hw_available(void);

#endif /* CRAFT_STORAGE_CRC32C_H */
