//! Pieces every program parser uses: setting details, reading addresses the way the
//! contract writes them, PAM's `key=value` lists and session lines.

use std::borrow::Cow;
use std::net::IpAddr;

use super::draft::{Detail, Draft};

/// Sets `details.<key>`.
pub fn set<'a>(event: &mut Draft<'a>, key: impl Into<Cow<'a, str>>, value: impl Into<Detail<'a>>) {
    event.details.insert(key, value);
}

/// Sets `details.<key>` to a string, unless it is empty.
pub fn set_text<'a>(event: &mut Draft<'a>, key: &'static str, value: &'a str) {
    let value = value.trim_fast();
    if !value.is_empty() {
        set(event, key, value);
    }
}

/// Sets `details.<key>` to an integer when `text` is one.
pub fn set_int(event: &mut Draft<'_>, key: &'static str, text: &str) {
    if let Ok(n) = text.trim_fast().parse::<i64>() {
        set(event, key, n);
    }
}

/// Sets `category`, `details.action` and, when given, `details.success`.
pub fn outcome(
    event: &mut Draft<'_>,
    category: &'static str,
    action: &'static str,
    success: Option<bool>,
) {
    event.category = Cow::Borrowed(category);
    set(event, "action", action);
    if let Some(success) = success {
        set(event, "success", success);
    }
}

/// Tags the event `suspicious` (once): its client text holds what the line's own
/// grammar puts elsewhere (a second address).
pub fn mark_suspicious(event: &mut Draft<'_>) {
    if !event.has_tag("suspicious") {
        event.tags.push(Cow::Borrowed("suspicious"));
    }
}

/// `str::trim` with a shortcut for the usual text, which neither starts nor ends with
/// a blank: two byte tests instead of decoding characters from both ends.
pub trait TrimFast {
    fn trim_fast(&self) -> &str;
}

impl TrimFast for str {
    #[inline]
    fn trim_fast(&self) -> &str {
        match (self.as_bytes().first(), self.as_bytes().last()) {
            (Some(first), Some(last)) if first.is_ascii_graphic() && last.is_ascii_graphic() => {
                self
            }
            _ => self.trim(),
        }
    }
}

/// An address as the contract writes it: `::ffff:1.2.3.4` → `1.2.3.4`, zone ids
/// (`fe80::1%lo`) dropped, brackets removed. `None` when the text is no address.
pub fn ip_address(text: &str) -> Option<Cow<'_, str>> {
    let text = text
        .trim_fast()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let bare = text.split('%').next().unwrap_or(text);
    // A dotted quad that parses is already written as the contract writes it (the
    // parser refuses leading zeros and short forms): no formatting.
    if bare.parse::<std::net::Ipv4Addr>().is_ok() {
        return Some(Cow::Borrowed(bare));
    }
    let written = match bare.parse::<IpAddr>().ok()? {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let mut buf = [0u8; IPV6_MAX];
                let written = write_ipv6(v6.segments(), &mut buf);
                // Already in its canonical form (the usual case): keep the borrowed
                // text, nothing allocated.
                if written == bare.as_bytes() {
                    return Some(Cow::Borrowed(bare));
                }
                String::from_utf8_lossy(written).into_owned()
            }
        },
        IpAddr::V4(v4) => v4.to_string(),
    };
    // Already in its canonical form: keep the borrowed text.
    if written == bare {
        return Some(Cow::Borrowed(bare));
    }
    Some(Cow::Owned(written))
}

/// The longest IPv6 address as text (eight groups of four hex digits).
const IPV6_MAX: usize = 39;

/// `segments` as `Ipv6Addr`'s `Display` writes a non-mapped address (RFC 5952:
/// lower-case hex without leading zeros; the longest run of two or more zero groups,
/// the first of equals, as `::`), into `out` without the formatter.
fn write_ipv6(segments: [u16; 8], out: &mut [u8; IPV6_MAX]) -> &[u8] {
    let (mut run_start, mut run_len) = (0, 0);
    let (mut start, mut len) = (0, 0);
    for (i, segment) in segments.iter().enumerate() {
        if *segment == 0 {
            if len == 0 {
                start = i;
            }
            len += 1;
            if len > run_len {
                (run_start, run_len) = (start, len);
            }
        } else {
            len = 0;
        }
    }
    let at = if run_len > 1 {
        let at = write_groups(out, 0, &segments[..run_start]);
        out[at..at + 2].copy_from_slice(b"::");
        write_groups(out, at + 2, &segments[run_start + run_len..])
    } else {
        write_groups(out, 0, &segments)
    };
    &out[..at]
}

/// Hex groups joined by `:` into `out` from `at`; where they end.
fn write_groups(out: &mut [u8; IPV6_MAX], mut at: usize, groups: &[u16]) -> usize {
    for (i, group) in groups.iter().enumerate() {
        if i > 0 {
            out[at] = b':';
            at += 1;
        }
        let digits = (16 - group.leading_zeros()).div_ceil(4).max(1);
        for d in (0..digits).rev() {
            out[at] = b"0123456789abcdef"[usize::from((group >> (4 * d)) & 0xf)];
            at += 1;
        }
    }
    at
}

/// [`ip_address`] of text that may be owned (an unescaped CEF value).
pub fn address<'a>(text: &Cow<'a, str>) -> Option<Cow<'a, str>> {
    match text {
        Cow::Borrowed(text) => ip_address(text),
        Cow::Owned(text) => ip_address(text).map(|ip| Cow::Owned(ip.into_owned())),
    }
}

/// Sets `details.sourceipaddress` for an address, `details.sourcehostname` for a name.
pub fn set_source<'a>(event: &mut Draft<'a>, text: impl Into<Cow<'a, str>>) {
    let text = match text.into() {
        Cow::Borrowed(text) => Cow::Borrowed(text.trim_fast()),
        Cow::Owned(text) => Cow::Owned(text.trim_fast().to_string()),
    };
    if text.is_empty() {
        return;
    }
    match address(&text) {
        Some(ip) => set(event, "sourceipaddress", ip),
        None => set(event, "sourcehostname", text),
    }
}

/// Where `needle` (ASCII) first occurs in `text`. For the short needles the parsers
/// look for in a log line this is cheaper than `str::find`, whose two-way searcher
/// costs more to set up than the search itself.
// Always inlined: the needles are constants, so the anchor is chosen at compile time
// (out of line, the search costs 2-3x as much per call on the bench workload).
#[inline(always)]
pub fn find(text: &str, needle: &str) -> Option<usize> {
    let (bytes, wanted) = (text.as_bytes(), needle.as_bytes());
    let (skip, anchor) = anchor(wanted)?;
    // A candidate start `at` has the anchor at `at + skip`.
    memchr::memchr_iter(anchor, bytes.get(skip..)?).find(|&at| bytes[at..].starts_with(wanted))
}

/// The byte of `needle` to look for first, and its place: the first that is not a
/// blank (the parsers' needles are mostly ` word `, and a line has many blanks).
#[inline(always)]
fn anchor(needle: &[u8]) -> Option<(usize, u8)> {
    let first = *needle.first()?;
    Some(
        needle
            .iter()
            .position(|b| *b != b' ')
            .map_or((0, first), |at| (at, needle[at])),
    )
}

/// `text.split_once(needle)` through [`find`].
#[inline(always)]
pub fn split_once<'a>(text: &'a str, needle: &str) -> Option<(&'a str, &'a str)> {
    // `needle` starts with an ASCII byte, so `at` is a char boundary.
    let at = find(text, needle)?;
    Some((&text[..at], &text[at + needle.len()..]))
}

/// `text.rsplit_once(needle)` (needle ASCII), as [`find`] from the end.
#[inline(always)]
pub fn rsplit_once<'a>(text: &'a str, needle: &str) -> Option<(&'a str, &'a str)> {
    let (bytes, wanted) = (text.as_bytes(), needle.as_bytes());
    let (skip, anchor) = anchor(wanted)?;
    let at = memchr::memrchr_iter(anchor, bytes.get(skip..)?)
        .find(|&at| bytes[at..].starts_with(wanted))?;
    Some((&text[..at], &text[at + needle.len()..]))
}

/// The value of `key=` in a PAM message (`logname= uid=1000 … rhost=1.2.3.4  user=bob`);
/// `None` when absent or empty.
pub fn pam_value<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    let mut rest = message;
    while let Some(at) = rest.find(key) {
        let before_ok =
            at == 0 || rest.as_bytes()[at - 1] == b' ' || rest.as_bytes()[at - 1] == b';';
        let after = &rest[at + key.len()..];
        if before_ok && after.starts_with('=') {
            let value = after[1..].split(' ').next().unwrap_or("");
            return (!value.is_empty()).then_some(value);
        }
        rest = &rest[at + key.len()..];
    }
    None
}

/// `alice(uid=1000)` → `alice`.
pub fn strip_uid(user: &str) -> &str {
    user.split('(').next().unwrap_or(user).trim_fast()
}

/// A PAM session line, `session opened for user <target>[(uid=…)] [by <user>(uid=…)]`
/// or `session closed for user <target>`: (opened, target, by-user).
pub fn pam_session(message: &str) -> Option<(bool, &str, Option<&str>)> {
    let at = find(message, "session opened for user ")
        .map(|i| (true, i + 24))
        .or_else(|| find(message, "session closed for user ").map(|i| (false, i + 24)))?;
    let (opened, start) = at;
    let rest = &message[start..];
    let (target, by) = match split_once(rest, " by ") {
        Some((target, by)) => (target, Some(by)),
        None => (rest, None),
    };
    let target = strip_uid(target);
    let by = by.map(strip_uid).filter(|b| !b.is_empty());
    Some((opened, target, by))
}

/// Applies a PAM session line the way the contract says for sudo and su: username is
/// the `by` user when named, else the session's user; targetuser is the session's user.
pub fn session<'a>(event: &mut Draft<'a>, message: &'a str) -> bool {
    let Some((opened, target, by)) = pam_session(message) else {
        return false;
    };
    let action = if opened {
        "session_open"
    } else {
        "session_close"
    };
    outcome(event, "session", action, None);
    set_text(event, "username", by.unwrap_or(target));
    set_text(event, "targetuser", target);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
        /// Any address (groups often zero, so runs of every length and place occur) is
        /// written as `Ipv6Addr`'s `Display` writes it.
        #[test]
        fn ipv6_addresses_are_written_as_std_writes_them(
            groups in proptest::collection::vec(
                proptest::prop_oneof![3 => proptest::strategy::Just(0u16), 1 => 0u16..16, 1 => proptest::num::u16::ANY],
                8,
            ),
        ) {
            let segments: [u16; 8] = groups.try_into().unwrap();
            let address = std::net::Ipv6Addr::from(segments);
            proptest::prop_assume!(address.to_ipv4_mapped().is_none());
            let mut buf = [0u8; IPV6_MAX];
            let ours = std::str::from_utf8(write_ipv6(segments, &mut buf)).unwrap().to_string();
            proptest::prop_assert_eq!(ours, address.to_string());
        }
    }

    #[test]
    fn addresses_are_written_as_the_contract_says() {
        assert_eq!(ip_address("1.2.3.4").as_deref(), Some("1.2.3.4"));
        assert_eq!(ip_address("::ffff:1.2.3.4").as_deref(), Some("1.2.3.4"));
        assert_eq!(ip_address("fe80::1%lo").as_deref(), Some("fe80::1"));
        assert_eq!(ip_address("[2001:db8::1]").as_deref(), Some("2001:db8::1"));
        assert_eq!(
            ip_address("2001:DB8:0:0::1").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(ip_address("scanner.example.com"), None);
        assert_eq!(ip_address(""), None);
    }

    #[test]
    fn splits_match_the_standard_ones() {
        let texts = [
            "",
            "a",
            " for ",
            "x for y for z",
            "é for ü from 1 port 2",
            "for",
            "a fo",
            " from  from x",
            "  x  x m m ",
            "from",
        ];
        for text in texts {
            for needle in [" for ", "for", " ", " from ", "  ", "  x", "m "] {
                assert_eq!(
                    split_once(text, needle),
                    text.split_once(needle),
                    "{text:?} {needle:?}"
                );
                assert_eq!(
                    rsplit_once(text, needle),
                    text.rsplit_once(needle),
                    "{text:?} {needle:?}"
                );
                assert_eq!(find(text, needle), text.find(needle), "{text:?} {needle:?}");
            }
        }
    }

    #[test]
    fn pam_values_are_found_by_whole_key() {
        let m = "authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=10.0.0.1  user=root";
        assert_eq!(pam_value(m, "rhost"), Some("10.0.0.1"));
        assert_eq!(pam_value(m, "user"), Some("root"));
        assert_eq!(pam_value(m, "ruser"), None);
        assert_eq!(pam_value(m, "logname"), None);
        assert_eq!(pam_value(m, "uid"), Some("0"));
        assert_eq!(pam_value(m, "missing"), None);
    }

    #[test]
    fn pam_sessions_name_target_and_actor() {
        assert_eq!(
            pam_session(
                "pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)"
            ),
            Some((true, "root", Some("alice")))
        );
        assert_eq!(
            pam_session("pam_unix(sshd:session): session opened for user bob by (uid=0)"),
            Some((true, "bob", None))
        );
        assert_eq!(
            pam_session("pam_unix(su:session): session closed for user root"),
            Some((false, "root", None))
        );
        assert_eq!(pam_session("nothing here"), None);
    }
}
