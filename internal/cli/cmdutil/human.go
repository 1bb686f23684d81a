package cmdutil

import (
	"fmt"
	"strconv"
	"strings"
)

// Bytes formats a byte count in decimal units, as Hugging Face and disk
// vendors count them: "512 B", "46.8 MB", "1.20 GB".
func Bytes(n int64) string {
	const units = "kMGTPE"
	if n < 1000 && n > -1000 {
		return strconv.FormatInt(n, 10) + " B"
	}
	f := float64(n)
	i := -1
	for (f >= 999.95 || f <= -999.95) && i < len(units)-1 {
		f /= 1000
		i++
	}
	return fmt.Sprintf("%.1f %cB", f, units[i])
}

// Count formats a count as model sizes are quoted: "62", "11.7 M", "7.0 B".
func Count(n int64) string {
	switch {
	case n < 1000:
		return strconv.FormatInt(n, 10)
	case n < 999_950:
		return fmt.Sprintf("%.1f k", float64(n)/1e3)
	case n < 999_950_000:
		return fmt.Sprintf("%.1f M", float64(n)/1e6)
	case n < 999_950_000_000:
		return fmt.Sprintf("%.1f B", float64(n)/1e9)
	}
	return fmt.Sprintf("%.1f T", float64(n)/1e12)
}

// Shape formats a tensor shape as torch prints its sizes: "[64, 3, 7, 7]",
// "[]" for a 0-d tensor.
func Shape(s []int64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, d := range s {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatInt(d, 10))
	}
	b.WriteByte(']')
	return b.String()
}

// Grouped formats n with thousands separators: "11,689,512".
func Grouped(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Plural returns a count with its noun, singular for 1 and plural
// otherwise: "1 thread", "4 threads", "2 shape mismatches" (nouns ending in
// s, x, ch or sh take "es").
func Plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	for _, suf := range []string{"s", "x", "ch", "sh"} {
		if strings.HasSuffix(noun, suf) {
			return strconv.Itoa(n) + " " + noun + "es"
		}
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
