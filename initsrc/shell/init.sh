#!/bin/sh
# init of the busybox demo: mount /proc, /sys and /dev, then run the check script (boot smoke) or, when
# the kernel command line says mmulab.shell (`doit shell:<variant>`), give the console a shell.
# Either way the machine powers off at the end.
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "mmulab: shell: /proc, /sys and /dev mounted"
case " $(cat /proc/cmdline) " in
*" mmulab.shell "*)
    echo "mmulab: shell: busybox sh on the console; 'exit' powers off"
    setsid cttyhack sh
    ;;
*)
    sh /etc/mmulab/check.sh
    ;;
esac
poweroff -f
