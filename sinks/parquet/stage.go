package parquet

import (
	"unsafe"

	"github.com/parquet-go/parquet-go"
)

// Why stage: parquet-go allocates column buffers on the first value of a
// row group, from pools whose smallest slice is 4 KiB, several per column
// (values, offsets, lengths, definition levels), and some required columns
// reserve a whole page buffer up front. That is 20 to 60 KiB per column,
// about 350 KiB for a 12-column table, held by a file that received ten
// rows. With thousands of open files, most of them small, memory would go
// to empty buffers. So a File keeps the first rows of each row group here,
// compactly, and hands them to parquet-go (creating its writer on first
// use) once they outweigh its fixed cost, or at Close.

// stageBytesPerColumn is how much a File stages per leaf column before it
// hands rows to parquet-go: a fraction of parquet-go's own fixed cost.
const stageBytesPerColumn = 8 << 10

// stageChunkBytes is the size of the chunks byte arrays are copied into;
// chunks never move, so staged values can point into them.
const stageChunkBytes = 4 << 10

// stage holds copies of rows not yet given to parquet-go.
type stage struct {
	vals   []parquet.Value
	ends   []int // row i is vals[ends[i-1]:ends[i]]
	chunks [][]byte
	rows   []parquet.Row // scratch for take
}

// add copies rows, byte arrays included.
func (s *stage) add(rows []parquet.Row) {
	for _, row := range rows {
		for _, v := range row {
			switch v.Kind() {
			case parquet.ByteArray:
				if !v.IsNull() {
					v = parquet.ByteArrayValue(s.copyBytes(v.ByteArray())).Level(v.RepetitionLevel(), v.DefinitionLevel(), v.Column())
				}
			case parquet.FixedLenByteArray:
				v = parquet.FixedLenByteArrayValue(s.copyBytes(v.ByteArray())).Level(v.RepetitionLevel(), v.DefinitionLevel(), v.Column())
			}
			s.vals = append(s.vals, v)
		}
		s.ends = append(s.ends, len(s.vals))
	}
}

func (s *stage) copyBytes(b []byte) []byte {
	n := len(s.chunks)
	if n == 0 || cap(s.chunks[n-1])-len(s.chunks[n-1]) < len(b) {
		s.chunks = append(s.chunks, make([]byte, 0, max(stageChunkBytes, len(b))))
		n++
	}
	c := s.chunks[n-1]
	s.chunks[n-1] = append(c, b...)
	return s.chunks[n-1][len(c) : len(c)+len(b) : len(c)+len(b)]
}

// len is the number of staged rows.
func (s *stage) len() int { return len(s.ends) }

// bytes is the memory the stage holds.
func (s *stage) bytes() int64 {
	n := int64(cap(s.vals))*int64(unsafe.Sizeof(parquet.Value{})) + int64(cap(s.ends))*8 + int64(cap(s.rows))*24
	for _, c := range s.chunks {
		n += int64(cap(c))
	}
	return n
}

// take returns the staged rows; they stay valid until reset.
func (s *stage) take() []parquet.Row {
	s.rows = s.rows[:0]
	start := 0
	for _, end := range s.ends {
		s.rows = append(s.rows, s.vals[start:end:end])
		start = end
	}
	return s.rows
}

// reset releases the staged memory: a file that staged once may stay idle
// for long, and the next row group stages anew.
func (s *stage) reset() { *s = stage{} }
