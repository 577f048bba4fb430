/* Compiled by tests/test_scan_elf.py with the real gcc: imports getpid, gethostname, uname
 * and syscall from glibc, so the scan must list them with their GLIBC_ versions. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/utsname.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void)
{
    char host[256];
    struct utsname u;
    gethostname(host, sizeof host);
    uname(&u);
    printf("%d %s %s %ld\n", getpid(), host, u.release, syscall(SYS_getppid));
    return 0;
}
