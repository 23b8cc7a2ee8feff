/* dirtier N: keeps N MiB of guest memory dirty, so that a live migration's
 * stop-and-copy always has N MiB (and little more) left to send.
 *
 * The memory is filled once with a non-zero pattern (QEMU sends zero pages
 * almost for free), then one byte per 4 KiB page is rewritten in an endless
 * sweep: every page is dirty again within a few ms, for little CPU. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], 0, 10) : 0;
    size_t len = mib << 20;
    if (len == 0)
        return 0;
    unsigned char *p = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED)
        return 1;
    mlock(p, len);
    unsigned long x = 88172645463325252UL;
    for (size_t i = 0; i < len; i += 8) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        memcpy(p + i, &x, 8);
    }
    struct timespec pause = {0, 1000000};
    for (unsigned char n = 1;; n++) {
        for (size_t i = 0; i < len; i += 4096)
            p[i] = n | 1;
        nanosleep(&pause, 0);
    }
}
