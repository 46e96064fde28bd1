/*
 * Helpers shared by the C demos: printing without stdio buffering surprises (every line goes out with
 * one write(2), so output from parent and child never interleaves mid-line), and powering off, which
 * an init must do instead of returning (PID 1 exiting panics the kernel), once the console has sent it all.
 */
#ifndef MMULAB_H
#define MMULAB_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/reboot.h>
#include <time.h>
#include <unistd.h>

static inline void say(const char *format, ...)
{
	char line[256];
	va_list args;
	int length = snprintf(line, sizeof line, "mmulab: ");
	va_start(args, format);
	length += vsnprintf(line + length, sizeof line - length - 1, format, args);
	va_end(args);
	if (length > (int)sizeof line - 2)
		length = sizeof line - 2;
	line[length++] = '\n';
	write(1, line, length);
}

/*
 * One point of a chart, for the release page to draw: "mmulab: data: <chart> <series> <x> <y>" (x and y come
 * from `point`, e.g. data("oom", "score", "%lu %ld", mib, score)). A data line is never a marker: the
 * human-readable lines around it say what it means.
 */
static inline void data(const char *chart, const char *series, const char *point, ...)
{
	char values[96];
	va_list args;
	va_start(args, point);
	vsnprintf(values, sizeof values, point, args);
	va_end(args);
	say("data: %s %s %s", chart, series, values);
}

/*
 * Wait, at most 2 s, until the console has sent everything written to it. A process's output waits in the tty
 * layer's buffer, which the UART driver empties by interrupt, on whichever hart takes it: powering off drops
 * what is left. (A two-hart boot on a busy host lost its last lines, cut mid-line by "reboot: Power down".)
 */
static inline void drain_console(void)
{
	for (int waited_ms = 0; waited_ms < 2000; waited_ms += 5) {
		int pending = 0;
		if (ioctl(1, TIOCOUTQ, &pending) != 0 || pending == 0)
			return;
		struct timespec pause = {0, 5 * 1000000L};
		nanosleep(&pause, NULL);
	}
}

static inline void power_off(void)
{
	say("powering off");
	drain_console();
	sync();
	reboot(RB_POWER_OFF);
	say("power-off failed");
	_exit(1);
}

#endif
