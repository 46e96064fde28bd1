/*
 * A tiny runtime for the asm demos: build one console line in a buffer, then write it with a single
 * write(2), so lines of parent and child never interleave. Every routine is a leaf that touches no
 * stack: a vfork'd or CLONE_VM child may call them while it borrows its parent's stack.
 * Clobbers t0-t6 (and a0-a2, a7 for line_end / power_off).
 */
#include "rt.h"

	.text

/* line_str(a0 = NUL-terminated string) */
	.globl	line_str
line_str:
	lla	t0, line_len
	ld	t1, 0(t0)
	lla	t2, line_buf
	add	t2, t2, t1
	li	t4, LINE_MAX - 2
1:	lbu	t3, 0(a0)
	beqz	t3, 2f
	bgeu	t1, t4, 2f
	sb	t3, 0(t2)
	addi	a0, a0, 1
	addi	t2, t2, 1
	addi	t1, t1, 1
	j	1b
2:	sd	t1, 0(t0)
	ret

/* line_char(a0 = one byte) */
	.globl	line_char
line_char:
	lla	t0, line_len
	ld	t1, 0(t0)
	lla	t2, line_buf
	add	t2, t2, t1
	sb	a0, 0(t2)
	addi	t1, t1, 1
	sd	t1, 0(t0)
	ret

/* line_dec(a0 = signed 64-bit value), in decimal */
	.globl	line_dec
line_dec:
	lla	t0, line_len
	ld	t1, 0(t0)
	lla	t2, line_buf
	add	t2, t2, t1
	bgez	a0, 1f
	li	t3, '-'
	sb	t3, 0(t2)
	addi	t2, t2, 1
	addi	t1, t1, 1
	neg	a0, a0
1:	lla	t4, digits_end
	mv	t5, t4
	li	t6, 10
2:	remu	t3, a0, t6
	addi	t3, t3, '0'
	addi	t5, t5, -1
	sb	t3, 0(t5)
	divu	a0, a0, t6
	bnez	a0, 2b
	j	copy_digits

/* line_hex(a0 = unsigned value), as 0x... without leading zeros */
	.globl	line_hex
line_hex:
	lla	t0, line_len
	ld	t1, 0(t0)
	lla	t2, line_buf
	add	t2, t2, t1
	li	t3, '0'
	sb	t3, 0(t2)
	li	t3, 'x'
	sb	t3, 1(t2)
	addi	t2, t2, 2
	addi	t1, t1, 2
	lla	t4, digits_end
	mv	t5, t4
1:	andi	t3, a0, 0xf
	li	t6, 10
	bltu	t3, t6, 2f
	addi	t3, t3, 'a' - '0' - 10
2:	addi	t3, t3, '0'
	addi	t5, t5, -1
	sb	t3, 0(t5)
	srli	a0, a0, 4
	bnez	a0, 1b

/* Append digits [t5, t4) at t2, count them in t1, store the new length through t0. */
copy_digits:
	lbu	t3, 0(t5)
	sb	t3, 0(t2)
	addi	t5, t5, 1
	addi	t2, t2, 1
	addi	t1, t1, 1
	bne	t5, t4, copy_digits
	sd	t1, 0(t0)
	ret

/* line_end: append a newline, write the line to fd 1, empty the buffer */
	.globl	line_end
line_end:
	lla	t0, line_len
	ld	t1, 0(t0)
	lla	t2, line_buf
	add	t3, t2, t1
	li	t4, '\n'
	sb	t4, 0(t3)
	addi	a2, t1, 1
	mv	a1, t2
	li	a0, 1
	li	a7, SYS_write
	ecall
	sd	zero, 0(t0)
	ret

/* take_line(a0 = destination): move the line built so far into a NUL-terminated string, empty the buffer */
	.globl	take_line
take_line:
	lla	t0, line_len
	ld	t1, 0(t0)
	lla	t2, line_buf
	add	t3, t2, t1
1:	beq	t2, t3, 2f
	lbu	t4, 0(t2)
	sb	t4, 0(a0)
	addi	t2, t2, 1
	addi	a0, a0, 1
	j	1b
2:	sb	zero, 0(a0)
	sd	zero, 0(t0)
	ret

/* power_off: say so, then reboot(POWER_OFF); if that fails, exit (the kernel then panics, which shows) */
	.globl	power_off
power_off:
	lla	a0, msg_power_off
	call	line_str
	call	line_end
	li	a0, LINUX_REBOOT_MAGIC1
	li	a1, LINUX_REBOOT_MAGIC2
	li	a2, LINUX_REBOOT_CMD_POWER_OFF
	li	a3, 0
	li	a7, SYS_reboot
	ecall
	li	a0, 1
	li	a7, SYS_exit
	ecall

	.section .rodata
msg_power_off:
	.asciz	"mmulab: powering off"

	.bss
	.balign	8
line_len:
	.skip	8
line_buf:
	.skip	LINE_MAX
digits:
	.skip	24
digits_end:

	.section .note.GNU-stack, "", @progbits
