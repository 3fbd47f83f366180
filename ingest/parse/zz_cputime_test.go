package parse

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
	"github.com/parquet-go/parquet-go"
)

func threadNanos() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return ts.Nano()
}

func TestZZCPUTime(t *testing.T) {
	if os.Getenv("ZZ") == "" {
		t.Skip()
	}
	runtime.LockOSThread()
	for _, bc := range []struct{ name string; cols []col; rec string }{{"click", clickColumns, clickEvent}, {"nested", orderColumns, orderEvent}, {"wide100", clickColumns, `{"attr_041":41,"attr_091":91,"attr_093":93,"event_time":"2026-11-23T07:00:00.123Z","attr_027":27,"attr_016":16,"attr_003":3,"attr_030":30,"attr_042":42,"duration_ms":5234,"attr_075":75,"country":"DE","attr_098":98,"attr_032":32,"attr_095":95,"attr_085":85,"referrer":"https://www.google.com/search?q=blue+widget","attr_081":81,"attr_083":83,"attr_051":51,"attr_006":6,"attr_043":43,"attr_059":59,"attr_077":77,"attr_066":66,"attr_017":17,"attr_000":0,"attr_021":21,"attr_065":65,"attr_034":34,"attr_022":22,"attr_072":72,"attr_090":90,"attr_024":24,"attr_086":86,"attr_096":96,"is_new_user":false,"attr_068":68,"attr_018":18,"attr_029":29,"attr_010":10,"attr_069":69,"attr_039":39,"attr_038":38,"attr_031":31,"attr_079":79,"attr_094":94,"attr_056":56,"attr_026":26,"attr_046":46,"attr_078":78,"page":"/products/widgets/blue-widget-2000","attr_063":63,"attr_099":99,"session_id":"s-2b9e3c1d5f8a4e7b","attr_053":53,"attr_052":52,"attr_074":74,"attr_007":7,"attr_012":12,"attr_045":45,"attr_050":50,"attr_049":49,"attr_054":54,"attr_070":70,"attr_060":60,"attr_013":13,"attr_028":28,"attr_025":25,"attr_058":58,"attr_009":9,"attr_073":73,"attr_014":14,"attr_062":62,"event_id":"7f9c2ba4-e88f-4a2b-9b7e-3c1d5f8a9e01","attr_064":64,"attr_004":4,"attr_044":44,"attr_005":5,"amount":19.99,"attr_084":84,"attr_037":37,"attr_011":11,"attr_023":23,"attr_040":40,"attr_015":15,"user_id":18446744,"attr_080":80,"attr_061":61,"attr_001":1,"attr_057":57,"attr_036":36,"attr_088":88,"attr_048":48,"attr_035":35,"attr_002":2,"attr_008":8,"device":"mobile","attr_092":92,"attr_019":19,"attr_087":87,"attr_047":47,"event_type":"page_view","attr_055":55,"attr_071":71,"attr_097":97,"attr_076":76,"attr_089":89,"attr_033":33,"attr_082":82,"attr_020":20,"attr_067":67}`}, {"wide", clickColumns, `{"amount":19.99,"extra_12":12,"extra_02":2,"session_id":"s-2b9e3c1d5f8a4e7b","extra_16":16,"user_id":18446744,"referrer":"https://www.google.com/search?q=blue+widget","event_type":"page_view","extra_10":10,"extra_09":"v9","extra_01":"v1","extra_00":0,"extra_11":"v11","extra_04":4,"extra_15":"v15","device":"mobile","country":"DE","extra_17":"v17","duration_ms":5234,"extra_13":"v13","event_id":"7f9c2ba4-e88f-4a2b-9b7e-3c1d5f8a9e01","extra_14":14,"event_time":"2026-11-23T07:00:00.123Z","extra_18":18,"extra_08":8,"extra_19":"v19","extra_07":"v7","is_new_user":false,"page":"/products/widgets/blue-widget-2000","extra_05":"v5","extra_06":6,"extra_03":"v3"}`}} {
		d := newDecoder(t, newLayout(t, bc.cols...), Options{EventTime: "event_time"})
		data := []byte(bc.rec)
		var row parquet.Row
		best := int64(1 << 62)
		for rep := 0; rep < 40; rep++ {
			const n = 20000
			start := threadNanos()
			for i := 0; i < n; i++ {
				row, _, _ = d.Decode(row, data)
				if i%1024 == 1023 {
					d.Reset()
				}
			}
			if el := (threadNanos() - start) / n; el < best {
				best = el
			}
		}
		fmt.Printf("%s %s %d ns/op (min thread CPU)\n", os.Getenv("ZZ"), bc.name, best)
	}
}
