/* crc32c.h: CRC-32C (Castagnoli), the snapshot file's checksum.
 *
 * Reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF
 * (the iSCSI / RFC 3720 parameters): "123456789" gives 0xE3069283.
 * No shared state (the tables live on the caller's stack), no heap
 * allocation, Python-free, any thread.
 */
#ifndef MH_CRC32C_H
#define MH_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of p[0..n) (p may be NULL when n is 0).  Builds its 8 KiB of
 * slicing-by-8 tables on the stack on every call (about 4,000 operations),
 * which is cheap next to the file it checks and needs no thread-safe
 * one-time initialization.  Can't fail. */
uint32_t mh_crc32c_compute(const uint8_t *p, size_t n);

#endif /* MH_CRC32C_H */
