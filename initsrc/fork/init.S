/*
 * fork, in asm: the same demo and output as init.c. clone(SIGCHLD) without CLONE_VM; the child stores
 * 'B' into its byte and exits, the parent waits and reads its own byte. The child uses registers only:
 * on NOMMU it runs on the parent's very stack, at the same time as the parent.
 */
#include "../lib/rt.h"

	.text
	.globl	_start
_start:
	say	"mmulab: fork: parent byte before = "
	lla	t0, shared
	lbu	a0, 0(t0)
	call	line_char
	call	line_end

	clone_with SIGCHLD
	bltz	a0, failed
	bnez	a0, parent

	say	"mmulab: fork: child writing 'B' into its byte"
	call	line_end
	lla	t0, shared
	li	t1, 'B'
	sb	t1, 0(t0)
	li	a0, 0
	syscall	SYS_exit

parent:
	li	a1, 0
	li	a2, 0
	li	a3, 0
	syscall	SYS_wait4
	say	"mmulab: fork: parent byte after child exit = "
	lla	t0, shared
	lbu	a0, 0(t0)
	call	line_char
	call	line_end
	lla	t0, shared
	lbu	t0, 0(t0)
	li	t1, 'A'
	bne	t0, t1, same_memory
	say	"mmulab: fork: the child wrote its own copy (copy-on-write)"
	call	line_end
	call	power_off
same_memory:
	say	"mmulab: fork: the child wrote the parent's memory: no page tables, no copy-on-write"
	call	line_end
	call	power_off
failed:
	mv	s0, a0
	say	"mmulab: fork: clone without CLONE_VM failed: "
	mv	a0, s0
	call	line_dec
	call	line_end
	call	power_off

	.data
shared:
	.byte	'A'

	.section .note.GNU-stack, "", @progbits
