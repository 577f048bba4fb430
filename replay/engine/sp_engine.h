/* syspage replay engine: shared declarations.
 * The engine is small and boring on purpose: Python plans, C runs the loop.
 * C symbols are sp_<area>_<verb> (see ../shared/STYLE.md). */
#ifndef SP_ENGINE_H
#define SP_ENGINE_H

#include <stdint.h>

#ifndef SP_ENGINE_VERSION
#error "SP_ENGINE_VERSION must be defined by the build (setup.py)"
#endif

/* Monotonic clock in nanoseconds. */
uint64_t sp_clock_now_ns(void);

#endif
