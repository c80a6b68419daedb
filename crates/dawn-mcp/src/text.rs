//! Small text helpers shared by the modules.

/// `text` cut to at most `max` bytes on a character boundary, marked with `…` when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let ellipsis = '…';
    let mut end = max.saturating_sub(ellipsis.len_utf8());
    while !text.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    let mut out = String::with_capacity(end + ellipsis.len_utf8());
    out.push_str(text.get(..end).unwrap_or_default());
    out.push(ellipsis);
    out
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn cuts_on_char_boundaries() {
        assert_eq!(truncate("hello", 5), "hello");
        assert_eq!(truncate("hello world", 8), "hello…");
        let cut = truncate("ééééé", 6);
        assert!(cut.len() <= 6, "{cut}");
        assert!(cut.ends_with('…'));
        assert_eq!(truncate("abc", 0), "…");
    }
}
