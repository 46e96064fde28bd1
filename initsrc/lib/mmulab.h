/*
 * Helpers shared by the C demos: printing without stdio buffering surprises (every line goes out with
 * one write(2), so output from parent and child never interleaves mid-line), and powering off, which
 * an init must do instead of returning (PID 1 exiting panics the kernel).
 */
#ifndef MMULAB_H
#define MMULAB_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
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

static inline void power_off(void)
{
	say("powering off");
	sync();
	reboot(RB_POWER_OFF);
	say("power-off failed");
	_exit(1);
}

#endif
