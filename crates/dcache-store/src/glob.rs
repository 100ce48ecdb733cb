//! Redis's glob patterns (`KEYS`, `SCAN MATCH`): `*`, `?`, `[abc]`, `[^a-z]`, and `\` to escape.

/// Whether `text` matches `pattern`. Linear in practice: a `*` remembers one backtrack point, so
/// a pattern of many stars cannot blow up.
#[must_use]
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    matches(pattern, text, || {})
}

/// `glob_match`, calling `step` once per turn of its loop, so that a test can bound the work.
fn matches(pattern: &[u8], text: &[u8], mut step: impl FnMut()) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        step();
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star = Some((p, t));
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((true, next)) = class(pattern, p, text[t]) {
                        p = next;
                        t += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == text[t] {
                        p += 2;
                        t += 1;
                        continue;
                    }
                }
                c => {
                    if c == text[t] {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `pattern[start] == b'['`. Returns whether it matched
/// and where the pattern continues after the class.
fn class(pattern: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    loop {
        match pattern.get(i) {
            // An unterminated class ends at the end of the pattern, as in Redis.
            None => return Some((matched != negate, i)),
            Some(b']') => return Some((matched != negate, i + 1)),
            Some(b'\\') if i + 1 < pattern.len() => {
                matched |= pattern[i + 1] == c;
                i += 2;
            }
            Some(&lo)
                if pattern.get(i + 1) == Some(&b'-')
                    && i + 2 < pattern.len()
                    && pattern[i + 2] != b']' =>
            {
                let hi = pattern[i + 2];
                let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                matched |= (lo..=hi).contains(&c);
                i += 3;
            }
            Some(&x) => {
                matched |= x == c;
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{glob_match, matches};

    #[test]
    fn patterns() {
        let table: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "heeeello", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[a-b]llo", "hcllo", false),
            ("user:*:name", "user:42:name", true),
            ("user:*:name", "user:42:age", false),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("*a*b*c*", "xxaxxbxxcxx", true),
            ("*a*b*c*", "xxaxxcxxbxx", false),
            ("abc", "abcd", false),
        ];
        for (pattern, text, expected) in table {
            assert_eq!(
                glob_match(pattern.as_bytes(), text.as_bytes()),
                *expected,
                "{pattern} ~ {text}"
            );
        }
    }

    /// Many stars cost at most a pass over the pattern per character of the text (the one
    /// backtrack point), not a branch per star: counted in steps, not timed.
    #[test]
    fn many_stars_stay_linear_in_pattern_times_text() {
        for (stars, len) in [(30, 5000), (60, 5000), (30, 10_000)] {
            let pattern = "*a".repeat(stars) + "b";
            let text = "a".repeat(len);
            let mut steps = 0u64;
            assert!(!matches(pattern.as_bytes(), text.as_bytes(), || steps += 1));
            let bound = ((pattern.len() + 1) * (text.len() + 1)) as u64;
            assert!(
                steps <= bound,
                "{stars} stars, {len} bytes: {steps} steps > {bound}"
            );
        }
        // A naive backtracking matcher takes about C(len, stars) steps here; one that only
        // gives up on the last star is still linear.
        let mut steps = 0u64;
        assert!(matches(b"*a*b*c", b"xaxbxc", || steps += 1));
        assert!(steps <= 7 * 7, "{steps}");
    }
}
