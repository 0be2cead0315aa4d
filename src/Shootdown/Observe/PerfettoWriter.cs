using System.Text.Json;

namespace Shootdown.Observe;

/// <summary>
/// Chrome trace-event JSON, as ui.perfetto.dev opens it: one track per CPU with its steps (and
/// their spinning, IPI waits and user work as nested slices), one interrupt track per CPU with the
/// TLB shootdown handlers, flow arrows from each IPI's sender to its receiver, and counter tracks.
/// Events are kept as small structs while the run goes and written with Utf8JsonWriter at the end,
/// sorted per track so timestamps are monotonic on every track.
/// </summary>
public sealed class PerfettoWriter : IDisposable
{
    private enum Kind : byte
    {
        Slice,
        FlowStart,
        FlowEnd,
        Counter,
        Instant,
    }

    private struct Ev
    {
        public int Tid;
        public long Ts;
        public long Dur;
        public Kind Kind;
        public int Name;
        public int Comm;
        public long A1;
        public long A2;
        public long A3;
        public long Seq;
    }

    private readonly string _path;
    private readonly int _nrCpus;
    private readonly List<Ev> _events = [];
    private readonly List<string> _names = [];
    private readonly Dictionary<string, int> _nameIds = new(StringComparer.Ordinal);
    private long _seq;
    private long _flowId;

    public PerfettoWriter(string path, int nrCpus)
    {
        _path = path;
        _nrCpus = nrCpus;
        // Fail now, not after the run, if the file cannot be written.
        File.WriteAllText(path, "");
    }

    private int Name(string s)
    {
        if (!_nameIds.TryGetValue(s, out int id))
        {
            id = _names.Count;
            _names.Add(s);
            _nameIds[s] = id;
        }
        return id;
    }

    private void Add(Ev e)
    {
        e.Seq = _seq++;
        _events.Add(e);
    }

    public void Step(int cpu, string comm, string what, long start, long end, long user, long spin, long ipiWait)
    {
        int c = Name(comm);
        Add(new Ev { Tid = cpu, Ts = start, Dur = end - start, Kind = Kind.Slice, Name = Name(what), Comm = c, A1 = user, A2 = spin, A3 = ipiWait });
        long t = start;
        if (spin > 0)
        {
            Add(new Ev { Tid = cpu, Ts = t, Dur = spin, Kind = Kind.Slice, Name = Name("spinning on a lock"), Comm = c });
            t += spin;
        }
        if (ipiWait > 0)
        {
            Add(new Ev { Tid = cpu, Ts = t, Dur = ipiWait, Kind = Kind.Slice, Name = Name("waiting for IPI acks"), Comm = c });
        }
        if (user > 0)
        {
            Add(new Ev { Tid = cpu, Ts = end - user, Dur = user, Kind = Kind.Slice, Name = Name("user"), Comm = c });
        }
    }

    public void Ipi(int sender, long sent, int receiver, long handled, long handlerNs)
    {
        long id = ++_flowId;
        int n = Name("TLB shootdown");
        Add(new Ev { Tid = sender, Ts = sent, Kind = Kind.FlowStart, Name = n, A1 = id });
        Add(new Ev { Tid = _nrCpus + receiver, Ts = handled, Dur = handlerNs, Kind = Kind.Slice, Name = Name("IPI handler: flush_tlb_func"), Comm = -1 });
        Add(new Ev { Tid = _nrCpus + receiver, Ts = handled, Kind = Kind.FlowEnd, Name = n, A1 = id });
    }

    /// <summary>A tracepoint hit on a CPU's track (tlb_flush with its reason, mm_migrate_pages), as a thread-scoped instant event.</summary>
    public void Instant(int cpu, string name, long t, string fields)
    {
        Add(new Ev { Tid = cpu, Ts = t, Kind = Kind.Instant, Name = Name(name), Comm = Name(fields) });
    }

    public void Counter(string name, long t, long value)
    {
        Add(new Ev { Tid = -1, Ts = t, Kind = Kind.Counter, Name = Name(name), A1 = value });
    }

    private static double Us(long ns) => ns / 1000.0;

    public void Dispose()
    {
        Ev[] evs = _events.ToArray();
        Array.Sort(evs, (a, b) =>
        {
            int c = a.Tid.CompareTo(b.Tid);
            if (c == 0 && a.Kind == Kind.Counter && b.Kind == Kind.Counter)
            {
                c = a.Name.CompareTo(b.Name);
            }
            if (c == 0)
            {
                c = a.Ts.CompareTo(b.Ts);
            }
            return c != 0 ? c : a.Seq.CompareTo(b.Seq);
        });
        using var fs = new FileStream(_path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        using var w = new Utf8JsonWriter(fs);
        w.WriteStartObject();
        w.WriteString("displayTimeUnit", "ns");
        w.WriteStartArray("traceEvents");
        w.WriteStartObject();
        w.WriteString("ph", "M");
        w.WriteString("name", "process_name");
        w.WriteNumber("pid", 1);
        w.WriteStartObject("args");
        w.WriteString("name", "simulated machine");
        w.WriteEndObject();
        w.WriteEndObject();
        for (int c = 0; c < _nrCpus; c++)
        {
            ThreadName(w, c, $"CPU {c}");
            ThreadName(w, _nrCpus + c, $"CPU {c} interrupts");
        }
        foreach (Ev e in evs)
        {
            w.WriteStartObject();
            switch (e.Kind)
            {
                case Kind.Slice:
                    w.WriteString("ph", "X");
                    w.WriteString("name", _names[e.Name]);
                    w.WriteString("cat", e.Tid >= _nrCpus ? "irq" : "sched");
                    w.WriteNumber("pid", 1);
                    w.WriteNumber("tid", e.Tid);
                    w.WriteNumber("ts", Us(e.Ts));
                    w.WriteNumber("dur", Us(e.Dur));
                    if (e.Comm >= 0)
                    {
                        w.WriteStartObject("args");
                        w.WriteString("task", _names[e.Comm]);
                        if (e.A1 + e.A2 + e.A3 > 0)
                        {
                            w.WriteNumber("user_us", Us(e.A1));
                            w.WriteNumber("spin_us", Us(e.A2));
                            w.WriteNumber("ipi_wait_us", Us(e.A3));
                        }
                        w.WriteEndObject();
                    }
                    break;
                case Kind.FlowStart:
                case Kind.FlowEnd:
                    w.WriteString("ph", e.Kind == Kind.FlowStart ? "s" : "f");
                    if (e.Kind == Kind.FlowEnd)
                    {
                        w.WriteString("bp", "e");
                    }
                    w.WriteString("name", _names[e.Name]);
                    w.WriteString("cat", "tlb");
                    w.WriteNumber("id", e.A1);
                    w.WriteNumber("pid", 1);
                    w.WriteNumber("tid", e.Tid);
                    w.WriteNumber("ts", Us(e.Ts));
                    break;
                case Kind.Instant:
                    w.WriteString("ph", "i");
                    w.WriteString("s", "t");
                    w.WriteString("name", _names[e.Name]);
                    w.WriteString("cat", "tracepoint");
                    w.WriteNumber("pid", 1);
                    w.WriteNumber("tid", e.Tid);
                    w.WriteNumber("ts", Us(e.Ts));
                    w.WriteStartObject("args");
                    w.WriteString("fields", _names[e.Comm]);
                    w.WriteEndObject();
                    break;
                case Kind.Counter:
                    w.WriteString("ph", "C");
                    w.WriteString("name", _names[e.Name]);
                    w.WriteNumber("pid", 1);
                    w.WriteNumber("ts", Us(e.Ts));
                    w.WriteStartObject("args");
                    w.WriteNumber("value", e.A1);
                    w.WriteEndObject();
                    break;
            }
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void ThreadName(Utf8JsonWriter w, int tid, string name)
    {
        w.WriteStartObject();
        w.WriteString("ph", "M");
        w.WriteString("name", "thread_name");
        w.WriteNumber("pid", 1);
        w.WriteNumber("tid", tid);
        w.WriteStartObject("args");
        w.WriteString("name", name);
        w.WriteEndObject();
        w.WriteEndObject();
    }
}
