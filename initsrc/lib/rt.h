/* Syscall numbers, constants and macros for the asm demos (riscv64, asm-generic syscall table). */
#ifndef MMULAB_RT_H
#define MMULAB_RT_H

#define SYS_pipe2        59
#define SYS_read         63
#define SYS_write        64
#define SYS_exit         93
#define SYS_reboot       142
#define SYS_uname        160
#define SYS_sethostname  161
#define SYS_getpid       172
#define SYS_munmap       215
#define SYS_clone        220
#define SYS_execve       221
#define SYS_mmap         222
#define SYS_wait4        260

#define CLONE_VM         0x00000100
#define CLONE_VFORK      0x00004000
#define CLONE_NEWUTS     0x04000000
#define CLONE_NEWPID     0x20000000
#define SIGCHLD          17

#define PROT_READ        1
#define PROT_WRITE       2
#define MAP_PRIVATE      0x02
#define MAP_ANONYMOUS    0x20

#define LINUX_REBOOT_MAGIC1        0xfee1dead
#define LINUX_REBOOT_MAGIC2        0x28121969
#define LINUX_REBOOT_CMD_POWER_OFF 0x4321fedc

#define LINE_MAX 256

#ifdef __ASSEMBLER__
/* say "text": append a string literal to the line buffer (clobbers a0, ra, t0-t6) */
.macro say text:req
	.pushsection .rodata
.Lsay\@:
	.asciz	"\text"
	.popsection
	lla	a0, .Lsay\@
	call	line_str
.endm

/* clone_with flags: clone(flags, newsp = 0 (keep sp), ptid, tls, ctid = 0); a0 = pid, 0 in the child */
.macro clone_with flags:req
	li	a0, \flags
	li	a1, 0
	li	a2, 0
	li	a3, 0
	li	a4, 0
	li	a7, SYS_clone
	ecall
.endm

/* syscall N: a7 = N; ecall (arguments already in a0-a5) */
.macro syscall number:req
	li	a7, \number
	ecall
.endm
#endif

#endif
