//! Bytes to text: a binlog value in its column's character set ([`decode_text`], through
//! `encoding_rs`; latin1 is MySQL's cp1252), and MySQL's binary JSON with exact values
//! ([`jsonb_text`]). Values read with SQL need neither: they arrive as utf8mb4 JSON text.

/// How a MySQL character set is decoded.
enum Charset {
    Utf8,
    Encoding(&'static encoding_rs::Encoding),
    Utf32,
}

/// The decoder of a MySQL character set, by its name. latin1 is MySQL's cp1252 (not
/// ISO-8859-1), ascii a subset of it.
fn charset(name: &str) -> Option<Charset> {
    use encoding_rs as e;
    Some(Charset::Encoding(match name {
        "utf8" | "utf8mb3" | "utf8mb4" => return Some(Charset::Utf8),
        "utf32" => return Some(Charset::Utf32),
        "latin1" | "ascii" => e::WINDOWS_1252,
        "latin2" => e::ISO_8859_2,
        "latin5" => e::WINDOWS_1254,
        "latin7" => e::ISO_8859_13,
        "cp1250" => e::WINDOWS_1250,
        "cp1251" => e::WINDOWS_1251,
        "cp1256" => e::WINDOWS_1256,
        "cp1257" => e::WINDOWS_1257,
        "cp866" => e::IBM866,
        "koi8r" => e::KOI8_R,
        "koi8u" => e::KOI8_U,
        "greek" => e::ISO_8859_7,
        "hebrew" => e::ISO_8859_8,
        "tis620" => e::WINDOWS_874,
        "macroman" => e::MACINTOSH,
        "sjis" | "cp932" => e::SHIFT_JIS,
        "ujis" | "eucjpms" => e::EUC_JP,
        "euckr" => e::EUC_KR,
        "gb2312" | "gbk" => e::GBK,
        "gb18030" => e::GB18030,
        "big5" => e::BIG5,
        "ucs2" | "utf16" => e::UTF_16BE,
        "utf16le" => e::UTF_16LE,
        _ => return None,
    }))
}

/// Bytes in MySQL character set `charset` (`None`: utf8mb4) as a string. Errors name the
/// character set, never the value: bytes that are not valid in it, or a character set with
/// no decoder here (armscii8, cp850, cp852, dec8, geostd8, hp8, keybcs2, macce, swe7) holding
/// anything but ASCII.
pub(super) fn decode_text(charset_name: Option<&str>, b: Vec<u8>) -> Result<String, String> {
    let name = charset_name.unwrap_or("utf8mb4");
    let invalid = || format!("text that is not valid {name}");
    match charset(name) {
        Some(Charset::Utf8) => String::from_utf8(b).map_err(|_| invalid()),
        Some(Charset::Encoding(enc)) => enc
            .decode_without_bom_handling_and_without_replacement(&b)
            .map(|s| s.into_owned())
            .ok_or_else(invalid),
        Some(Charset::Utf32) => {
            if !b.len().is_multiple_of(4) {
                return Err(invalid());
            }
            b.chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect::<Option<String>>()
                .ok_or_else(invalid)
        }
        None if b.is_ascii() => String::from_utf8(b).map_err(|_| invalid()),
        None => Err(format!(
            "character set {name} has no decoder in capture (only its ASCII text can be read): \
             convert the column to utf8mb4"
        )),
    }
}

/// MySQL binary JSON as JSON text with exact values: DECIMAL as its digits, DATE / TIME /
/// DATETIME / TIMESTAMP as MySQL's own text (`"2024-01-02 03:04:05.000006"`), other opaque
/// values as MySQL prints them (`"base64:type<id>:<data>"`).
pub(super) fn jsonb_text(v: mysql_async::binlog::jsonb::Value<'_>) -> Result<String, String> {
    let dom = v.parse().map_err(|e| format!("binary JSON value: {e}"))?;
    let mut out = String::new();
    write_dom(&dom, &mut out);
    Ok(out)
}

fn write_dom(dom: &mysql_async::binlog::jsonb::JsonDom, out: &mut String) {
    use mysql_async::binlog::jsonb::{
        JsonContainer as C, JsonDom as D, JsonNumber as N, JsonScalar as S,
    };
    let string =
        |s: &str, out: &mut String| out.push_str(&serde_json::to_string(s).unwrap_or_default());
    match dom {
        D::Container(C::Array(items)) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_dom(x, out);
            }
            out.push(']');
        }
        D::Container(C::Object(map)) => {
            out.push('{');
            for (i, (k, x)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(k, out);
                out.push(':');
                write_dom(x, out);
            }
            out.push('}');
        }
        D::Scalar(S::Null) => out.push_str("null"),
        D::Scalar(S::Boolean(b)) => out.push_str(if *b { "true" } else { "false" }),
        D::Scalar(S::String(s)) => string(s, out),
        D::Scalar(S::DateTime(t)) => string(&format!("{t:.6}"), out),
        D::Scalar(S::Number(N::Decimal(d))) => out.push_str(&d.to_string()),
        D::Scalar(S::Number(N::Int(i))) => out.push_str(&i.to_string()),
        D::Scalar(S::Number(N::Uint(u))) => out.push_str(&u.to_string()),
        D::Scalar(S::Number(N::Double(f))) => match serde_json::Number::from_f64(*f) {
            Some(n) => out.push_str(&n.to_string()),
            None => out.push_str("null"),
        },
        D::Scalar(S::Opaque(o)) => string(&o.to_string(), out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::binlog::jsonb::{OpaqueValue, Value as Jb};
    use mysql_async::consts::ColumnType;

    #[test]
    fn latin1_is_cp1252_and_other_charsets_decode() {
        // ’ “ ” – € ™ in cp1252, and é.
        let cp1252 = vec![0x92, 0x93, 0x94, 0x96, 0x80, 0x99, 0xE9];
        assert_eq!(decode_text(Some("latin1"), cp1252).unwrap(), "’“”–€™é");
        // latin1 bytes that happen to be valid UTF-8 are still latin1.
        assert_eq!(decode_text(Some("latin1"), vec![0xC3, 0xA9]).unwrap(), "Ã©");
        assert_eq!(
            decode_text(Some("cp1251"), vec![0xCF, 0xF0, 0xE8]).unwrap(),
            "При"
        );
        assert_eq!(
            decode_text(Some("sjis"), vec![0x93, 0xFA, 0x96, 0x7B]).unwrap(),
            "日本"
        );
        assert_eq!(decode_text(Some("gbk"), vec![0xD6, 0xD0]).unwrap(), "中");
        assert_eq!(decode_text(Some("ucs2"), vec![0x20, 0xAC]).unwrap(), "€");
        assert_eq!(
            decode_text(Some("utf32"), vec![0, 1, 0xF6, 0x00]).unwrap(),
            "😀"
        );
        assert_eq!(decode_text(None, "ß".as_bytes().to_vec()).unwrap(), "ß");
        // Refused loudly, naming the character set and not the value.
        let e = decode_text(Some("utf8mb4"), vec![0xFF]).unwrap_err();
        assert!(e.contains("utf8mb4"), "{e}");
        assert_eq!(
            decode_text(Some("cp850"), b"plain".to_vec()).unwrap(),
            "plain"
        );
        assert!(decode_text(Some("cp850"), vec![0x82])
            .unwrap_err()
            .contains("cp850"));
    }

    #[test]
    fn binary_json_keeps_decimals_and_temporals() {
        // DECIMAL(3,2) 1.10: precision, scale, then the packed digits (sign bit set).
        let dec = Jb::Opaque(OpaqueValue::new(
            ColumnType::MYSQL_TYPE_NEWDECIMAL,
            vec![3u8, 2, 0x81, 0x0A],
        ));
        assert_eq!(jsonb_text(dec).unwrap(), "1.10");
        // DATETIME(6) 2024-05-06 07:08:09.123456, packed as MySQL does.
        let ymd = ((2024i64 * 13 + 5) << 5) | 6;
        let hms = (7i64 << 12) | (8 << 6) | 9;
        let packed = (((ymd << 17) | hms) << 24) + 123_456;
        let dt = Jb::Opaque(OpaqueValue::new(
            ColumnType::MYSQL_TYPE_DATETIME,
            packed.to_le_bytes().to_vec(),
        ));
        assert_eq!(jsonb_text(dt).unwrap(), "\"2024-05-06 07:08:09.123456\"");
    }
}
