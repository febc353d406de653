use std::io::BufRead;
// Oracle for pkg/calendar tests: runs the upstream proxmox-time CalendarEvent.
// Reads lines "schedule<TAB>last" from stdin; prints "schedule<TAB>last<TAB>result" where
// result is the next epoch, "none", "err:<msg>" (compute error) or "perr:<msg>" (parse error).
// Before each computation glibc's mktime offset cache is primed with the UTC
// offset in force at last+1 (see pkg/calendar docs).
fn prime(start: i64) {
    let off = match proxmox_time::localtime(start) { Ok(t) => t.tm_gmtoff, Err(_) => return };
    for k in [0i64, 3, -3, 6, -6, 12, -12, 24, -24, 48, -48] {
        let u = start + k * 3600;
        let mut tm = match proxmox_time::localtime(u) { Ok(t) => t, Err(_) => continue };
        if tm.tm_gmtoff != off { continue; }
        if let Ok(r) = proxmox_time::timelocal(&mut tm) { if r == u { return; } }
    }
    eprintln!("could not prime for {}", start);
}
fn main() {
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.unwrap();
        let mut parts = line.splitn(2, '\t');
        let sched = parts.next().unwrap();
        let last: Option<i64> = parts.next().map(|s| s.trim().parse().unwrap());
        let res = match sched.parse::<proxmox_time::CalendarEvent>() {
            Err(e) => format!("perr:{}", e),
            Ok(ev) => match last {
                None => "ok".to_string(),
                Some(l) => {
                    prime(l + 1);
                    match ev.compute_next_event(l) {
                        Ok(Some(n)) => n.to_string(),
                        Ok(None) => "none".to_string(),
                        Err(e) => format!("err:{}", e),
                    }
                }
            },
        };
        println!("{}\t{}\t{}", sched, last.map(|l| l.to_string()).unwrap_or_default(), res);
    }
}
