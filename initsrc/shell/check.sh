#!/bin/sh
# Proof that the shell works, one feature a line; configs/demos.toml names the lines each kernel must print.
echo "mmulab: shell: command substitution: $(echo works)"
words=$(echo one two three | wc -w)
echo "mmulab: shell: pipeline counted $words words"
x=outer
( x=inner; echo "mmulab: shell: subshell sees x=$x" )
echo "mmulab: shell: parent still sees x=$x"
sleep 0.2 &
job=$!
wait $job
echo "mmulab: shell: background job finished with status $?"
sleep 10 &
job=$!
kill $job
wait $job
echo "mmulab: shell: kill: the killed job ended with status $?"
echo "mmulab: shell: free -m"
free -m
echo "mmulab: shell: ps -o pid,vsz,rss,args"
ps -o pid,vsz,rss,args
echo "mmulab: shell: head -3 /proc/meminfo"
head -3 /proc/meminfo
echo "mmulab: shell: /proc/self/maps of cat"
cat /proc/self/maps
echo "mmulab: shell: uname -a"
uname -a

# The applets a student exploring memory reaches for; each output is checked on both kernels.
echo "mmulab: shell: dmesg | head -3"
dmesg | head -3
echo "mmulab: shell: sed: hello world" | sed 's/world/from sed/'
awk '/^MemTotal:/ { printf "mmulab: shell: awk: MemTotal is %d KiB\n", $2 }' /proc/meminfo
seq 3 | xargs echo "mmulab: shell: xargs:"
echo "mmulab: shell: hexdump -C -n 16 /proc/self/exe"
hexdump -C -n 16 /proc/self/exe
# vm.nr_trim_pages exists only without an MMU, vm.max_map_count only with one.
echo "mmulab: shell: sysctl -a | grep vm. | sort"
sysctl -a 2>/dev/null | grep -E '^vm\.(overcommit_memory|nr_trim_pages|max_map_count) ' | sort
echo "mmulab: shell: top -b -n 1 | head -3"
top -b -n 1 | head -3
echo "mmulab: shell: all checks done"
