/*
 * fork, in asm: the same demo and output as init.c. clone(SIGCHLD) without CLONE_VM; the child stores
 * 'B' into its byte and exits, the parent waits and reads its own byte. The child uses registers only:
 * on NOMMU it runs on the parent's very stack, at the same time as the parent. riscv has no fork system
 * call (only clone), and this clone(SIGCHLD, stack 0) is what libc's fork() turns into: the program says both.
 */
#include "../lib/rt.h"

	.text
	.globl	_start
_start:
	say	"mmulab: fork: riscv defines no fork system call: only clone (__ARCH_WANT_SYS_CLONE, not __ARCH_WANT_SYS_FORK)"
	call	line_end
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
	j	fork_is_clone
same_memory:
	say	"mmulab: fork: the child wrote the parent's memory: no page tables, no copy-on-write"
	call	line_end
fork_is_clone:
	/* the clone above is clone(SIGCHLD, stack 0): exactly what libc's fork() makes on riscv */
	say	"mmulab: fork: clone(SIGCHLD) on the caller's own stack, what libc's fork() turns into: returned a child pid"
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
