//! Bytes of one line or field to text. Real datasets are not always valid UTF-8 (TREC's training
//! file has a Latin-1 byte on line 66): rather than drop the row or stop, each byte that is not
//! part of valid UTF-8 is read as Latin-1, which keeps every character a Latin-1 file meant and
//! loses nothing of a UTF-8 one. The caller reports the line so the user can check it.

/// The text, and the byte offset of the first invalid byte when repair was needed.
pub fn decode(bytes: &[u8]) -> (String, Option<usize>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), None),
        Err(e) => {
            let mut out = String::with_capacity(bytes.len() + 8);
            for chunk in bytes.utf8_chunks() {
                out.push_str(chunk.valid());
                out.extend(chunk.invalid().iter().map(|&b| char::from(b)));
            }
            (out, Some(e.valid_up_to()))
        }
    }
}

/// Strips one trailing `\r` (files written on Windows).
pub fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_utf8_is_kept_and_stray_bytes_read_as_latin1() {
        assert_eq!(
            decode("caf\u{e9}".as_bytes()),
            ("caf\u{e9}".to_string(), None)
        );
        // 0xF0 is 'ð' in Latin-1; the valid "é" (C3 A9) around it stays as it is.
        assert_eq!(
            decode(b"sister\xf0city \xc3\xa9"),
            ("sister\u{f0}city \u{e9}".to_string(), Some(6))
        );
        assert_eq!(decode(b"\xe9t\xe9"), ("\u{e9}t\u{e9}".to_string(), Some(0)));
    }
}
