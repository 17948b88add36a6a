//! Incremental `text/event-stream` parsing: [`SseParser`] keeps only each event's `data`, and
//! [`SseRewriter`] passes a stream through, letting a function replace an event's data while
//! its other fields (`id`, `event`, `retry`) and comments stay as they were.
//!
//! Lines end with LF or CRLF; an event ends at an empty line. Both refuse an event larger than
//! their limit rather than grow without bound.

/// The event or line was larger than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an SSE event is larger than the limit")]
pub struct TooLarge;

/// Splits a byte stream into whole events (the raw bytes, up to and including the empty line).
struct Splitter {
    buf: Vec<u8>,
    /// Where to resume looking for the end of the current event.
    scanned: usize,
    max: usize,
}

impl Splitter {
    fn new(max: usize) -> Self {
        Splitter {
            buf: Vec::new(),
            scanned: 0,
            max,
        }
    }

    /// Appends `chunk` and calls `on_event` with each event it completes.
    fn feed(&mut self, chunk: &[u8], on_event: &mut impl FnMut(&[u8])) -> Result<(), TooLarge> {
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        let mut i = self.scanned.max(start);
        while let Some(off) = memchr::memchr(b'\n', &self.buf[i..]) {
            let nl = i + off;
            // An empty line: the byte before this newline is the previous line's newline
            // (or a CR right after it), or the event starts with it.
            let line_start = if nl > start && self.buf[nl - 1] == b'\r' {
                nl - 1
            } else {
                nl
            };
            let empty = line_start == start || self.buf[line_start - 1] == b'\n';
            i = nl + 1;
            if empty {
                on_event(&self.buf[start..i]);
                start = i;
            }
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len();
        if self.buf.len() > self.max {
            return Err(TooLarge);
        }
        Ok(())
    }

    /// What is left after the last whole event.
    fn rest(&self) -> &[u8] {
        &self.buf
    }
}

/// The lines of one raw event, without their line endings.
fn lines(event: &[u8]) -> impl Iterator<Item = &[u8]> {
    event
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
}

/// The value of a `data` line, or `None` for any other line.
fn data_value(line: &[u8]) -> Option<&[u8]> {
    let value = line.strip_prefix(b"data")?;
    match value {
        [b':', b' ', rest @ ..] | [b':', rest @ ..] => Some(rest),
        [] => Some(&[][..]),
        _ => None,
    }
}

/// An event's data: its `data` lines joined with LF; `None` when it has none.
fn event_data(event: &[u8]) -> Option<Vec<u8>> {
    let mut data: Option<Vec<u8>> = None;
    for line in lines(event) {
        if let Some(v) = data_value(line) {
            match &mut data {
                Some(d) => {
                    d.push(b'\n');
                    d.extend_from_slice(v);
                }
                None => data = Some(v.to_vec()),
            }
        }
    }
    data
}

/// An incremental `text/event-stream` parser that keeps only `data` fields.
pub struct SseParser {
    splitter: Splitter,
}

impl SseParser {
    /// A parser refusing events larger than `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        SseParser {
            splitter: Splitter::new(max_bytes),
        }
    }

    /// Feeds bytes; `on_event` gets the data of each complete event that has any.
    pub fn feed(&mut self, chunk: &[u8], on_event: &mut impl FnMut(&[u8])) -> Result<(), TooLarge> {
        self.splitter.feed(chunk, &mut |event| {
            if let Some(d) = event_data(event).filter(|d| !d.is_empty()) {
                on_event(&d);
            }
        })
    }
}

/// Passes an event stream through, replacing the data of the events `rewrite` returns new data
/// for; everything else is copied byte for byte.
pub struct SseRewriter {
    splitter: Splitter,
}

impl SseRewriter {
    /// A rewriter refusing events larger than `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        SseRewriter {
            splitter: Splitter::new(max_bytes),
        }
    }

    /// Feeds bytes and returns what can be sent on: every complete event, rewritten or not.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        rewrite: &mut impl FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> Result<Vec<u8>, TooLarge> {
        let mut out = Vec::with_capacity(chunk.len());
        self.splitter.feed(chunk, &mut |event| {
            let new = event_data(event).and_then(|d| rewrite(&d));
            match new {
                None => out.extend_from_slice(event),
                Some(data) => {
                    for line in lines(event) {
                        if data_value(line).is_none() {
                            out.extend_from_slice(line);
                            out.push(b'\n');
                        }
                    }
                    // Serialized JSON holds no raw newline, but split any so each is a data line.
                    for part in data.split(|&b| b == b'\n') {
                        out.extend_from_slice(b"data: ");
                        out.extend_from_slice(part);
                        out.push(b'\n');
                    }
                    out.push(b'\n');
                }
            }
        })?;
        Ok(out)
    }

    /// The bytes after the last complete event: an unfinished event, which a client never
    /// dispatches (the layer drops it rather than pass on what it could not filter).
    pub fn finish(&self) -> &[u8] {
        self.splitter.rest()
    }
}

/// One SSE event whose data is `json`, for appending to a stream.
pub fn frame(json: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(json.len() + 22);
    frame.extend_from_slice(b"event: message\ndata: ");
    frame.extend_from_slice(json);
    frame.extend_from_slice(b"\n\n");
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<String> {
        let mut p = SseParser::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            assert!(
                p.feed(c, &mut |d: &[u8]| out
                    .push(String::from_utf8_lossy(d).into_owned()))
                    .is_ok()
            );
        }
        out
    }

    #[test]
    fn sse_events_across_chunks_and_line_endings() {
        assert_eq!(
            events(&[
                b"id: 0\nretry: 3000\ndata:\n\n",
                b"event: message\r\ndata: {\"a\"",
                b":1}\r\n\r\n: keep-alive\n\ndata: x\ndata: y\n\n"
            ]),
            vec!["{\"a\":1}".to_owned(), "x\ny".to_owned()]
        );
    }

    #[test]
    fn the_rewriter_replaces_data_and_keeps_other_fields() {
        let mut r = SseRewriter::new(1 << 20);
        let mut out = Vec::new();
        let mut f = |d: &[u8]| (d == b"old").then(|| b"new".to_vec());
        for c in [
            &b"id: 1\nevent: message\r\nda"[..],
            b"ta: old\r\n\r\n: ping\n\nid: 2\ndata: keep\n\nid: 3\ndata: o",
        ] {
            out.extend(r.feed(c, &mut f).unwrap());
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "id: 1\nevent: message\ndata: new\n\n: ping\n\nid: 2\ndata: keep\n\n"
        );
        assert_eq!(r.finish(), b"id: 3\ndata: o");
    }

    #[test]
    fn oversized_events_are_refused() {
        let mut r = SseRewriter::new(8);
        assert_eq!(r.feed(b"data: 0123456789", &mut |_| None), Err(TooLarge));
    }
}
