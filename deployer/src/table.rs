//! Plain aligned text tables for terminal output (no borders, so they stay greppable).

/// Renders `rows` under `header`, each column padded to its widest cell; the last column is
/// not padded. Every line starts with `indent`.
pub fn render(indent: &str, header: &[&str], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::from(indent);
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn pads_columns_to_the_widest_cell() {
        let rows = vec![
            vec!["7".to_owned(), "abc".to_owned(), "running".to_owned()],
            vec!["12".to_owned(), "a".to_owned(), String::new()],
        ];
        let text = super::render("  ", &["REV", "TAG", "NOTE"], &rows);
        assert_eq!(text, "  REV  TAG  NOTE\n  7    abc  running\n  12   a\n");
    }
}
