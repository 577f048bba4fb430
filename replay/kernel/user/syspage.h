/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * syspage: identity, title and system names on pages shared with the kernel.
 *
 * After the 2007 FreeBSD proposal (a per-process read-only page the kernel
 * writes, a per-process read-write page the process writes, a system-wide
 * read-only page), ported to Linux 6.1 for measurement under QEMU.
 *
 * Every exec'd ELF process gets one mapping of three pages, "[syspage]",
 * announced in the aux vector:
 *   AT_SYSPAGE_PROC   struct syspage_proc, read-only   (page 0)
 *   AT_SYSPAGE_SYS    struct syspage_sys,  read-only   (page 1)
 *   AT_SYSPAGE_TITLE  struct syspage_title             (page 2)
 * The title page is read-only until the process makes it writable with
 * mprotect(PROT_READ | PROT_WRITE) on it, which shows it as
 * "[syspage-title]"; write access to pages 0 and 1 is refused (EACCES).
 * No entry (getauxval() returns 0) means the scheme is off for this process.
 *
 * Reading a kernel-written page (sequence protocol):
 *   do {
 *       s = load_acquire(&p->seq);        // odd: a write is in progress
 *       if (s & 1) continue;
 *       copy the fields you need;
 *       read barrier;
 *   } while (load(&p->seq) != s);
 * Then, for syspage_proc, use the copy only if (flags & SYSPAGE_F_VALID);
 * otherwise make the system call (the page is shared with another process,
 * see SYSPAGE_F_VALID below).
 *
 * Writing the title (user space): seq += 1 (odd), write title[] and len,
 * seq += 1 (even), with release ordering. The kernel reads it with a bounded
 * number of attempts and falls back to argv when the writer never settles.
 */
#ifndef _UAPI_LINUX_SYSPAGE_H
#define _UAPI_LINUX_SYSPAGE_H

#include <linux/types.h>

#define AT_SYSPAGE_PROC		80	/* address of struct syspage_proc */
#define AT_SYSPAGE_TITLE	81	/* address of struct syspage_title */
#define AT_SYSPAGE_SYS		82	/* address of struct syspage_sys */

#define SYSPAGE_VERSION		1

/*
 * The values are as getpid(), getppid(), getpgid(0), getsid(0), getuid() ...
 * would return them to this process: translated into its own pid and user
 * namespaces.
 */
#define SYSPAGE_F_VALID		0x1	/* clear: memory shared with another
					 * process (vfork, CLONE_VM without
					 * CLONE_THREAD): use the system call */

struct syspage_proc {
	__u32 seq;		/* even: stable; odd: kernel writing */
	__u32 version;		/* SYSPAGE_VERSION */
	__u32 size;		/* sizeof(struct syspage_proc) the kernel fills */
	__u32 flags;		/* SYSPAGE_F_* */
	__s32 pid;
	__s32 ppid;
	__s32 pgid;
	__s32 sid;
	__u32 uid, euid, suid;
	__u32 gid, egid, sgid;
	__u64 updates;		/* number of kernel writes, for tests */
};

#define SYSPAGE_NAME_LEN	65	/* __NEW_UTS_LEN + 1 */

struct syspage_sys {
	__u32 seq;		/* even: stable; odd: kernel writing */
	__u32 version;
	__u32 size;
	__u32 flags;
	char sysname[SYSPAGE_NAME_LEN];
	char nodename[SYSPAGE_NAME_LEN];	/* hostname */
	char release[SYSPAGE_NAME_LEN];		/* osrelease */
	char version_str[SYSPAGE_NAME_LEN];
	char machine[SYSPAGE_NAME_LEN];
	char domainname[SYSPAGE_NAME_LEN];
};

#define SYSPAGE_TITLE_MAX	2048	/* bytes of title[] the kernel reads */

struct syspage_title {
	__u32 seq;		/* written by the process: odd while writing */
	__u32 len;		/* bytes in title[]; 0: no title, show argv */
	__u32 version;		/* set by the kernel when the page appears */
	__u32 size;
	char title[SYSPAGE_TITLE_MAX];
};

#endif /* _UAPI_LINUX_SYSPAGE_H */
