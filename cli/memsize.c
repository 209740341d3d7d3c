/* memsize.c — memory sizes on the command line (--max-memory) and the default budget: the
 * kernel's MemAvailable, what can be allocated without swapping. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

bool cli_parse_size(const char *s, uint64_t *bytes) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v > 0) || v > 1e18) return false;
    static const char units[] = "KMGT";
    double scale = 1;
    if (*end) {
        const char *u = strchr(units, *end & ~0x20); /* upper case */
        if (!u || !*u) return false;
        for (const char *k = units; k <= u; k++) scale *= 1024;
        end++;
        if (*end == 'i') end++;
        if ((*end & ~0x20) == 'B') end++;
    }
    if (*end || v * scale > 1e18) return false;
    *bytes = (uint64_t)(v * scale);
    return true;
}

bool cli_mem_available(uint64_t *bytes) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return false;
    char line[256];
    unsigned long long kb = 0;
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) found = sscanf(line, "MemAvailable: %llu kB", &kb) == 1;
    fclose(f);
    *bytes = (uint64_t)kb * 1024;
    return found;
}
