//! Column alignment with the semantics of Go's `text/tabwriter` (left
//! aligned, space padded), which upstream's CLI output is made with: text
//! is cut into cells at tabs; a cell is in a column only when a tab ends
//! it (the text after a line's last tab is not in any column); a column's
//! width is the widest of its cells plus padding, at least `minwidth`, over
//! each run of consecutive lines that have a cell in that column. So the
//! same row strings as upstream give the same output, trailing spaces
//! included.

/// Upstream's usual writer settings: minwidth 5, padding 3.
pub fn align(text: &str) -> String {
    align_with(text, 5, 3)
}

/// Aligns `text` with the given minimum cell width and padding.
pub fn align_with(text: &str, minwidth: usize, padding: usize) -> String {
    let mut lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let ends_with_newline = text.ends_with('\n');
    if ends_with_newline {
        lines.pop();
    }
    let mut f = Formatter {
        lines: &lines,
        widths: Vec::new(),
        minwidth,
        padding,
        out: String::with_capacity(text.len() * 2),
    };
    f.format(0, lines.len());
    if !ends_with_newline && f.out.ends_with('\n') {
        f.out.pop();
    }
    f.out
}

struct Formatter<'a> {
    lines: &'a [Vec<&'a str>],
    widths: Vec<usize>,
    minwidth: usize,
    padding: usize,
    out: String,
}

fn width(cell: &str) -> usize {
    cell.chars().count()
}

impl Formatter<'_> {
    /// Whether line `i` has a tab-terminated cell in `column`.
    fn has_cell(&self, i: usize, column: usize) -> bool {
        column + 1 < self.lines[i].len()
    }

    /// Lays out lines `[start, end)` from column `self.widths.len()` on.
    fn format(&mut self, start: usize, end: usize) {
        let column = self.widths.len();
        let mut pending = start;
        let mut this = start;
        while this < end {
            if !self.has_cell(this, column) {
                this += 1;
                continue;
            }
            self.write_lines(pending, this);
            let block_start = this;
            let mut w = self.minwidth;
            while this < end && self.has_cell(this, column) {
                w = w.max(width(self.lines[this][column]) + self.padding);
                this += 1;
            }
            self.widths.push(w);
            self.format(block_start, this);
            self.widths.pop();
            pending = this;
        }
        self.write_lines(pending, end);
    }

    fn write_lines(&mut self, start: usize, end: usize) {
        for line in &self.lines[start..end] {
            for (j, cell) in line.iter().enumerate() {
                self.out.push_str(cell);
                if let Some(&w) = self.widths.get(j) {
                    let pad = w.saturating_sub(width(cell));
                    self.out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            self.out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns_with_padding() {
        assert_eq!(
            align("IP\tIDENTITY\tSOURCE\n10.0.0.1/32\t1\tlocal\n"),
            "IP            IDENTITY   SOURCE\n10.0.0.1/32   1          local\n"
        );
    }

    #[test]
    fn trailing_text_is_not_a_column() {
        // The header's second field is trailing text; the rows' second field
        // ends with a tab, so rows are padded and the header is not.
        assert_eq!(
            align("KEY\tVALUE\na\tlong value\t\nbb\tv\t\n"),
            "KEY   VALUE\na     long value   \nbb    v            \n"
        );
    }

    #[test]
    fn minwidth_applies() {
        assert_eq!(align("a\tb\n"), "a    b\n");
        assert_eq!(align_with("a\tb\n", 0, 1), "a b\n");
    }

    #[test]
    fn lines_without_tabs_split_blocks() {
        assert_eq!(
            align("a\tx\nlong line\nabcdefgh\ty\n"),
            "a    x\nlong line\nabcdefgh   y\n"
        );
    }

    #[test]
    fn cell_width_counts_characters() {
        assert_eq!(align("é\tx\nab\ty\n"), "é    x\nab   y\n");
    }
}
