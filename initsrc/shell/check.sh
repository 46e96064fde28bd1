#!/bin/sh
# Proof that the shell works, one feature a line; configs/demos.toml names the lines each kernel must print.
echo "mmulab: shell: command substitution: $(echo works)"
words=$(echo one two three | wc -w)
echo "mmulab: shell: pipeline counted $words words"
x=outer
( x=inner; echo "mmulab: shell: subshell sees x=$x" )
echo "mmulab: shell: parent still sees x=$x"
sleep 1 &
job=$!
wait $job
echo "mmulab: shell: background job finished with status $?"
echo "mmulab: shell: free -m"
free -m
echo "mmulab: shell: ps"
ps
echo "mmulab: shell: /proc/meminfo"
cat /proc/meminfo | head -n 8
echo "mmulab: shell: /proc/self/maps of cat"
cat /proc/self/maps
echo "mmulab: shell: uname -a"
uname -a
echo "mmulab: shell: all checks done"
