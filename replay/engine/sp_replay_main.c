/* sp_replay: the replay engine's C core as a static program, for machines without Python
 * (the patched kernel's QEMU guest, issue 10: `--impl page-kernel`).
 *
 * usage: sp_replay PLAN PROC [tight|paced] [SAMPLES] [WARMUPS] [MIN_SAMPLE_NS] [LOCKING] [IMPLS]
 *                  [MIN_CLASS_NS] [MAX_SAMPLE_NS]
 * IMPLS: comma-separated, of syscall, page, page-kernel (default syscall,page); page-kernel
 * reads the patched kernel's pages (sp_kernel_page.c) and fails when they are absent.
 *
 * Runs traced process PROC of the plan file (docs/replay.md "The plan file") exactly as
 * syspage.replay._engine.run_process does, and prints the same result as one JSON object
 * on stdout. Build: `make -C replay/engine sp_replay` or syspage.replay.static.build(). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp_engine.h"

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* page-kernel's own value check and skip reason (sp_run.c kernel_page_check) */
static void print_kernel_check(const struct sp_class_result *cr)
{
	printf("\"kernel_checked\": %llu, \"kernel_mismatches\": %llu, \"kernel_skip_reason\": ",
	       (unsigned long long)cr->kernel_checked, (unsigned long long)cr->kernel_mismatches);
	if (cr->kernel_skip_reason)
		json_string(cr->kernel_skip_reason);
	else
		printf("null");
	printf(", \"kernel_first_mismatch\": ");
	if (cr->kernel_mismatches) {
		printf("{\"page\": {\"hash\": %llu, \"text\": ", (unsigned long long)cr->first_kernel.hash);
		json_string(cr->first_kernel.text);
		printf("}, \"syscall\": {\"hash\": %llu, \"text\": ", (unsigned long long)cr->first_kernel_syscall.hash);
		json_string(cr->first_kernel_syscall.text);
		printf("}}");
	} else {
		printf("null");
	}
}

/* Bit set of enum sp_impl from "syscall,page,page-kernel"; -1 on an unknown name. */
static int parse_impls(const char *list)
{
	static const char *names[SP_IMPL_COUNT] = {"syscall", "page", "page-kernel"};
	int bits = 0;
	char buf[128];
	snprintf(buf, sizeof buf, "%s", list);
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int found = -1;
		for (int i = 0; i < SP_IMPL_COUNT; i++)
			if (strcmp(tok, names[i]) == 0)
				found = i;
		if (found < 0)
			return -1;
		bits |= 1 << found;
	}
	return bits;
}

/* A clock coarser than this makes calibration meaningless (a pass measures 0 ns and the
 * loops go to their cap: hours under emulation). A guest whose TSC was marked unstable
 * falls back to jiffies (4 ms); the VM boots with tsc=reliable (replay/kernel/harness.py). */
#define MAX_CLOCK_RES_NS 1000

/* The clock's step as a reader sees it: the smallest change between successive reads
 * (clock_getres reports the timer tick, 4 ms without high-resolution timers, even when
 * the TSC clocksource reads to the nanosecond). */
static uint64_t clock_step_ns(void)
{
	uint64_t best = UINT64_MAX;
	for (int i = 0; i < 20; i++) {
		uint64_t t0 = sp_clock_now_ns(), t1;
		while ((t1 = sp_clock_now_ns()) == t0)
			;
		if (t1 - t0 < best)
			best = t1 - t0;
	}
	return best;
}

static int check_clock(char *err, size_t errlen)
{
	uint64_t step = clock_step_ns();
	if (step > MAX_CLOCK_RES_NS) {
		snprintf(err, errlen, "CLOCK_MONOTONIC advances in steps of %llu ns (> %d ns): timing would be "
			 "meaningless; is the clocksource jiffies? (/sys/devices/system/clocksource)",
			 (unsigned long long)step, MAX_CLOCK_RES_NS);
		return -1;
	}
	return 0;
}

static void print_result(const struct sp_run_result *res)
{
	static const char *impl_names[SP_IMPL_COUNT] = {"syscall", "page", "page-kernel"};
	printf("{\"timer_overhead_ns\": %.3f, \"loops\": {\"syscall\": %llu, \"page\": %llu, \"page-kernel\": %llu}, "
	       "\"uts_private\": %s, \"n_threads\": %u, \"replay_pid\": %d, \"kside_pid\": %d, \"classes\": [",
	       res->timer_overhead_ns, (unsigned long long)res->loops[0], (unsigned long long)res->loops[1],
	       (unsigned long long)res->loops[2], res->uts_private ? "true" : "false", res->n_threads, (int)res->replay_pid, (int)res->kside_pid);
	for (uint32_t c = 0; c < res->n_classes; c++) {
		const struct sp_class_result *cr = &res->classes[c];
		printf("%s{\"replayed\": %llu, \"skip_reason\": ", c ? ", " : "", (unsigned long long)cr->replayed);
		if (cr->skip_reason)
			json_string(cr->skip_reason);
		else
			printf("null");
		printf(", \"skip\": [%d, %d, %d], \"checked\": %llu, \"mismatches\": %llu, ",
		       cr->skip[0], cr->skip[1], cr->skip[2], (unsigned long long)cr->checked,
		       (unsigned long long)cr->mismatches);
		print_kernel_check(cr);
		printf(", \"first_mismatch\": ");
		if (cr->mismatches) {
			printf("{\"page\": {\"hash\": %llu, \"text\": ", (unsigned long long)cr->first_page.hash);
			json_string(cr->first_page.text);
			printf("}, \"syscall\": {\"hash\": %llu, \"text\": ", (unsigned long long)cr->first_syscall.hash);
			json_string(cr->first_syscall.text);
			printf("}}");
		} else {
			printf("null");
		}
		printf(", \"samples\": {");
		int first = 1;
		for (int impl = 0; impl < SP_IMPL_COUNT; impl++) {
			if (!cr->samples[impl])
				continue;
			printf("%s\"%s\": [", first ? "" : ", ", impl_names[impl]);
			for (uint32_t s = 0; s < cr->n_samples[impl]; s++)
				printf("%s%.6f", s ? ", " : "", cr->samples[impl][s]);
			printf("]");
			first = 0;
		}
		printf("}}");
	}
	printf("], \"reference\": {");
	for (int r = 0; r < 2; r++) {
		printf("%s\"%s\": [", r ? ", " : "", r ? "page" : "syscall");
		for (uint32_t s = 0; s < res->n_reference; s++)
			printf("%s%.6f", s ? ", " : "", res->reference_ns[r] ? res->reference_ns[r][s] : 0.0);
		printf("]");
	}
	printf("}}\n");
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s PLAN PROC [tight|paced] [SAMPLES] [WARMUPS] [MIN_SAMPLE_NS] [LOCKING]\n", argv[0]);
		return 2;
	}
	FILE *f = fopen(argv[1], "rb");
	if (!f) {
		fprintf(stderr, "%s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc(len > 0 ? (size_t)len : 1);
	if (!buf || len <= 0 || fread(buf, 1, (size_t)len, f) != (size_t)len) {
		fprintf(stderr, "%s: cannot read the plan\n", argv[1]);
		return 2;
	}
	fclose(f);
	struct sp_run_config cfg = {
		.proc = (uint32_t)strtoul(argv[2], NULL, 10),
		.mode = argc > 3 && strcmp(argv[3], "paced") == 0 ? SP_MODE_PACED : SP_MODE_TIGHT,
		.impls = (1 << SP_IMPL_SYSCALL) | (1 << SP_IMPL_PAGE),
		.samples = argc > 4 ? (uint32_t)strtoul(argv[4], NULL, 10) : 5,
		.warmups = argc > 5 ? (uint32_t)strtoul(argv[5], NULL, 10) : 1,
		.min_sample_ns = argc > 6 ? strtoull(argv[6], NULL, 10) : 1000000,
		.max_gap_ns = 1000000,
		.locking = argc > 7 ? argv[7] : "page",
		.check = 1,
		.min_class_ns = argc > 9 ? strtoull(argv[9], NULL, 10) : 0,
		.max_sample_ns = argc > 10 ? strtoull(argv[10], NULL, 10) : 0,
	};
	char err[256];
	if (argc > 8) {
		cfg.impls = parse_impls(argv[8]);
		if (cfg.impls <= 0) {
			fprintf(stderr, "%s: unknown implementation in %s (known: syscall, page, page-kernel)\n",
				argv[0], argv[8]);
			return 2;
		}
	}
	if (cfg.impls & (1 << SP_IMPL_PAGE_KERNEL)) {
		cfg.kernel_page = sp_kernel_page_open(err, sizeof err);
		if (!cfg.kernel_page) {
			fprintf(stderr, "%s\n", err);
			return 2;
		}
	}
	if (check_clock(err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	struct sp_plan plan;
	struct sp_run_result res;
	if (sp_plan_open(&plan, buf, (size_t)len, err, sizeof err) != 0) {
		fprintf(stderr, "%s: %s\n", argv[1], err);
		return 2;
	}
	if (sp_run_process(&plan, &cfg, &res, err, sizeof err) != 0) {
		fprintf(stderr, "%s: replay process %u: %s\n", argv[1], cfg.proc, err);
		return 1;
	}
	print_result(&res);
	sp_run_result_free(&res);
	free(buf);
	return 0;
}
