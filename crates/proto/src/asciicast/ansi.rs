//! Terminal control sequences removed from recorded text, for searching it.

use std::iter::Peekable;
use std::str::Chars;

/// `s` without CSI, OSC, DCS/SOS/PM/APC strings, other escape sequences and control
/// characters; newlines, tabs and carriage returns stay.
///
/// A sequence cut off at the end of `s` is dropped, so join a recording's output
/// events before stripping them.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                Some('[') => skip_csi(&mut chars),
                Some(']' | 'P' | 'X' | '^' | '_') => skip_string(&mut chars),
                // Intermediates then one final character, e.g. `ESC ( B`.
                Some(' '..='/') => {
                    while chars.next_if(|c| (' '..='/').contains(c)).is_some() {}
                    chars.next();
                }
                // `ESC 7`, `ESC M`, `ESC =`, ...: the escape and one character.
                _ => {}
            },
            '\u{9b}' => skip_csi(&mut chars),
            '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            '\n' | '\t' | '\r' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Parameters and intermediates, then the final character; a malformed sequence
/// ends at the first character that cannot belong to it, which is kept.
fn skip_csi(chars: &mut Peekable<Chars<'_>>) {
    while chars.next_if(|c| (' '..='?').contains(c)).is_some() {}
    chars.next_if(|c| ('@'..='~').contains(c));
}

/// A control string, up to BEL, ST (`ESC \`) or a lone ESC.
fn skip_string(chars: &mut Peekable<Chars<'_>>) {
    while let Some(c) = chars.next() {
        match c {
            '\x07' | '\u{9c}' => return,
            '\x1b' => {
                chars.next_if_eq(&'\\');
                return;
            }
            _ => {}
        }
    }
}
