//! libpq's own reading of a connection string (`PQconninfoParse`, the parser `PQconnectdb`
//! runs), through the bundled libpq that also connects: multi-host lists, `%2F` socket hosts,
//! bracketed IPv6, query parameters that replace the URI's parts — every form libpq documents,
//! exactly as libpq reads it. libpq's error text echoes the input (secrets included), so it is
//! never shown: only the kind of failure is reported.

use std::ffi::{CStr, CString};

/// The keyword/value pairs a connection string sets (libpq applies no defaults and reads no
/// environment here), in libpq's keyword order.
pub(super) type Pairs = Vec<(String, String)>;

/// Why libpq refused a string, without any of its text.
#[derive(Debug)]
pub(super) enum Refusal {
    /// The string holds a NUL byte.
    Nul,
    /// An unknown keyword or URI query parameter: its name, when it looks like a parameter
    /// name (lowercase letters and `_` only) rather than something that could be a secret.
    UnknownParameter(Option<String>),
    /// Invalid percent-encoding.
    PercentEncoding,
    /// Anything else (an unclosed `[`, a missing `=`, an unterminated quote...).
    Malformed,
}

/// Parses `conninfo` as libpq does.
pub(super) fn parse(conninfo: &str) -> Result<Pairs, Refusal> {
    let c = CString::new(conninfo).map_err(|_| Refusal::Nul)?;
    let mut error: *mut std::os::raw::c_char = std::ptr::null_mut();
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call; libpq
    // allocates either the options array or the error message, each freed below with the
    // matching libpq function.
    let options = unsafe { pq_sys::PQconninfoParse(c.as_ptr(), &mut error) };
    if options.is_null() {
        let refusal = if error.is_null() {
            Refusal::Malformed
        } else {
            // SAFETY: libpq returned a NUL-terminated message it allocated.
            let text = unsafe { CStr::from_ptr(error) }
                .to_string_lossy()
                .into_owned();
            // SAFETY: `error` came from libpq and is freed once.
            unsafe { pq_sys::PQfreemem(error.cast()) };
            classify(&text)
        };
        return Err(refusal);
    }
    let mut pairs = Pairs::new();
    let mut next = options;
    loop {
        // SAFETY: libpq ends the array with an entry whose keyword is NULL; every entry before
        // it is initialised and its strings are NUL-terminated.
        let option = unsafe { &*next };
        if option.keyword.is_null() {
            break;
        }
        if !option.val.is_null() {
            // SAFETY: as above.
            let (k, v) = unsafe { (CStr::from_ptr(option.keyword), CStr::from_ptr(option.val)) };
            pairs.push((
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            ));
        }
        // SAFETY: the terminating entry has not been reached, so the next one exists.
        next = unsafe { next.add(1) };
    }
    // SAFETY: `options` came from PQconninfoParse and is freed once.
    unsafe { pq_sys::PQconninfoFree(options) };
    Ok(pairs)
}

/// The kind of libpq's refusal; the text itself (which may hold a secret) is dropped here.
fn classify(text: &str) -> Refusal {
    if text.contains("invalid URI query parameter") || text.contains("invalid connection option") {
        let name = text
            .split('"')
            .nth(1)
            .filter(|n| {
                !n.is_empty()
                    && n.len() <= 40
                    && n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            })
            .map(str::to_owned);
        Refusal::UnknownParameter(name)
    } else if text.contains("percent") {
        Refusal::PercentEncoding
    } else {
        Refusal::Malformed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_replace_the_uri_parts() {
        let pairs = parse("postgres://app@localhost/app?host=db.example.com").unwrap();
        assert!(pairs.contains(&("host".into(), "db.example.com".into())));
        let pairs = parse("postgresql://u@%2Fvar%2Frun/db").unwrap();
        assert!(pairs.contains(&("host".into(), "/var/run".into())));
    }

    #[test]
    fn refusals_keep_no_text() {
        assert!(matches!(
            parse("postgres://h/db?bogus_param=1"),
            Err(Refusal::UnknownParameter(Some(n))) if n == "bogus_param"
        ));
        assert!(matches!(
            parse("postgres://h/db?passwordZqSecret9X=1"),
            Err(Refusal::UnknownParameter(None))
        ));
        assert!(matches!(
            parse("postgres://u:p%zzSecret@h/db"),
            Err(Refusal::PercentEncoding)
        ));
    }
}
