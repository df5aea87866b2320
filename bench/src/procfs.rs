//! Reading a process's CPU time and memory from /proc.

/// CPU time (user + system) in clock ticks, from the text of `/proc/PID/stat`.
pub(crate) fn cpu_ticks_from_stat(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may contain spaces: fields are counted
    // from the last ')'. utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` field (VmRSS, VmHWM) of `/proc/PID/status`, in KiB.
pub(crate) fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// CPU ticks of a live process.
pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    cpu_ticks_from_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// A memory field of a live process, in KiB.
pub(crate) fn mem_kib(pid: u32, field: &str) -> Option<u64> {
    status_kib(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        field,
    )
}

/// The children of `pid` (by the ppid field of every /proc/N/stat).
pub(crate) fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    s[s.rfind(')')? + 1..]
                        .split_whitespace()
                        .nth(1)?
                        .parse::<u32>()
                        .ok()
                })
                == Some(pid)
        })
        .collect()
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux this runs on otherwise).
pub(crate) fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_name_with_spaces() {
        let stat = "4242 (busbar shard) S 1 4242 4242 0 -1 4194560 500 0 0 0 123 45 0 0 20 0 3 0 100 1000 200";
        assert_eq!(cpu_ticks_from_stat(stat), Some(168));
        assert_eq!(cpu_ticks_from_stat("garbage"), None);
    }

    #[test]
    fn status_fields() {
        let s = "Name:\tbusbar\nVmHWM:\t    7472 kB\nVmRSS:\t    5112 kB\n";
        assert_eq!(status_kib(s, "VmRSS"), Some(5112));
        assert_eq!(status_kib(s, "VmHWM"), Some(7472));
        assert_eq!(status_kib(s, "VmSwap"), None);
    }
}
