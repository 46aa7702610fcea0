//! Reading input line by line with a bound on each line, so that one huge
//! line cannot take memory without limit (`olm-sign --lines`,
//! `olm-verify --lines`).

use std::io::{self, BufRead};

/// What [`read_line`] found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Line {
    /// A line (without its `\n`) is in the buffer.
    Read,
    /// The line is longer than the limit; the buffer holds its first part
    /// and the rest is still unread ([`skip_line`] moves past it).
    TooLong,
    /// End of input.
    End,
}

/// Reads one line into `line` (cleared first), without its `\n`. The last
/// line need not end with `\n`. Stops reading at `limit` bytes.
pub fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>, limit: usize) -> io::Result<Line> {
    line.clear();
    let mut any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(if any { Line::Read } else { Line::End });
        }
        any = true;
        let (chunk, used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        if line.len() + chunk.len() > limit {
            return Ok(Line::TooLong);
        }
        line.extend_from_slice(chunk);
        reader.consume(used);
        if done {
            return Ok(Line::Read);
        }
    }
}

/// Moves past the rest of the current line, `\n` included.
pub fn skip_line(reader: &mut impl BufRead) -> io::Result<()> {
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(());
        }
        match available.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = available.len();
                reader.consume(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_with_and_without_final_newline() {
        let mut input: &[u8] = b"a\n\nbc";
        let mut line = Vec::new();
        assert_eq!(read_line(&mut input, &mut line, 10).unwrap(), Line::Read);
        assert_eq!(line, b"a");
        assert_eq!(read_line(&mut input, &mut line, 10).unwrap(), Line::Read);
        assert_eq!(line, b"");
        assert_eq!(read_line(&mut input, &mut line, 10).unwrap(), Line::Read);
        assert_eq!(line, b"bc");
        assert_eq!(read_line(&mut input, &mut line, 10).unwrap(), Line::End);
    }

    #[test]
    fn a_long_line_is_reported_then_skipped() {
        // A small buffer makes the long line span several fills.
        let mut input = io::BufReader::with_capacity(4, &b"0123456789\nok\n"[..]);
        let mut line = Vec::new();
        assert_eq!(read_line(&mut input, &mut line, 5).unwrap(), Line::TooLong);
        assert!(line.len() <= 5);
        skip_line(&mut input).unwrap();
        assert_eq!(read_line(&mut input, &mut line, 5).unwrap(), Line::Read);
        assert_eq!(line, b"ok");
        assert_eq!(read_line(&mut input, &mut line, 5).unwrap(), Line::End);
    }
}
