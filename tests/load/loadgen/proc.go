//go:build linux

package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports (the kernel fixes it
// for user space whatever CONFIG_HZ is); reading it would need cgo's sysconf.
const clockTicks = 100

// ProcCPU returns the user+system CPU time the process has used, from
// /proc/<pid>/stat (10 ms resolution).
func ProcCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	u, s, err := parseStatCPU(data)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(u+s) * time.Second / clockTicks, nil
}

// parseStatCPU returns utime and stime (fields 14 and 15) of a
// /proc/<pid>/stat line. The command name (field 2) is in parentheses and
// may itself hold spaces and parentheses, so fields are counted from the
// last ')'.
func parseStatCPU(data []byte) (utime, stime uint64, err error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, errors.New("no command name")
	}
	f := bytes.Fields(data[i+1:])
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("only %d fields after the command name", len(f))
	}
	if utime, err = strconv.ParseUint(string(f[14-3]), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("utime: %w", err)
	}
	if stime, err = strconv.ParseUint(string(f[15-3]), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("stime: %w", err)
	}
	return utime, stime, nil
}

// ProcStatus holds the fields of /proc/<pid>/status the tool reports.
type ProcStatus struct {
	RSS     int64 // VmRSS, bytes
	Threads int
}

// ReadProcStatus reads /proc/<pid>/status.
func ReadProcStatus(pid int) (ProcStatus, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcStatus{}, err
	}
	st, err := parseStatus(data)
	if err != nil {
		return st, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	return st, nil
}

// parseStatus reads VmRSS ("VmRSS:	  12345 kB") and Threads.
func parseStatus(data []byte) (ProcStatus, error) {
	var st ProcStatus
	var haveRSS bool
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, val, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		f := bytes.Fields(val)
		if len(f) == 0 {
			continue
		}
		switch string(key) {
		case "VmRSS":
			kb, err := strconv.ParseInt(string(f[0]), 10, 64)
			if err != nil {
				return st, fmt.Errorf("VmRSS: %w", err)
			}
			if len(f) > 1 && string(f[1]) != "kB" {
				return st, fmt.Errorf("VmRSS: unit %q, want kB", f[1])
			}
			st.RSS, haveRSS = kb*1024, true
		case "Threads":
			n, err := strconv.Atoi(string(f[0]))
			if err != nil {
				return st, fmt.Errorf("status field Threads: %w", err)
			}
			st.Threads = n
		}
	}
	if !haveRSS {
		return st, errors.New("no VmRSS (a zombie or kernel thread?)")
	}
	return st, nil
}

// ProcIOStats are the system call counts of /proc/<pid>/io.
type ProcIOStats struct {
	// SysR counts read-type system calls (read, readv, …), SysW
	// write-type ones (write, writev, …; not send or sendmsg).
	SysR, SysW uint64
}

// ProcIO reads /proc/<pid>/io; pid is a number or "self". Reading
// another process's needs the right to trace it (its parent, the same
// user, has it).
func ProcIO(pid string) (ProcIOStats, error) {
	data, err := os.ReadFile("/proc/" + pid + "/io")
	if err != nil {
		return ProcIOStats{}, err
	}
	return parseProcIO(data)
}

// parseProcIO reads syscr and syscw ("syscw: 123").
func parseProcIO(data []byte) (ProcIOStats, error) {
	var st ProcIOStats
	var have int
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *uint64
		switch string(key) {
		case "syscr":
			dst = &st.SysR
		case "syscw":
			dst = &st.SysW
		default:
			continue
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(val)), 10, 64)
		if err != nil {
			return st, fmt.Errorf("/proc io %s: %w", key, err)
		}
		*dst = n
		have++
	}
	if have != 2 {
		return st, errors.New("/proc io: no syscr and syscw")
	}
	return st, nil
}

// SelfCPU returns this process's user+system CPU time.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// RaiseNoFile raises this process's soft RLIMIT_NOFILE to its hard limit
// and returns the new soft limit. Children started afterwards inherit it,
// so the spawned node gets it too.
func RaiseNoFile() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return rl.Cur, err
		}
	}
	return rl.Cur, nil
}

// parseProm reads the unlabelled samples of the wanted metrics from the
// Prometheus text format ("go_goroutines 42"); comments and labelled
// series are skipped.
func parseProm(data []byte, wanted ...string) map[string]float64 {
	want := make(map[string]bool, len(wanted))
	for _, w := range wanted {
		want[w] = true
	}
	out := make(map[string]float64, len(wanted))
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		name, rest, ok := bytes.Cut(line, []byte(" "))
		if !ok || !want[string(name)] {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(string(f[0]), 64)
		if err != nil {
			continue
		}
		out[string(name)] = v
	}
	return out
}
