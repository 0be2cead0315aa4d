using System.Globalization;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;

namespace Shootdown.Safety;

public enum ViolationKind
{
    LostWrite,
    StaleAccessAfterFree,
    WriteAfterProtect,
}

/// <summary>One coherence violation, with what is needed to find it again.</summary>
public sealed record Violation
{
    public required string Kind { get; init; }
    public required double TimeS { get; init; }
    public required long TimeNs { get; init; }
    /// <summary>The CPU whose access (or, for a lost write, whose reclaim dropped the data) was wrong.</summary>
    public required int Cpu { get; init; }
    public required string Task { get; init; }
    public required int Mm { get; init; }
    public required string Address { get; init; }
    public required int Frame { get; init; }
    /// <summary>The policy step that opened the window: who cleared the PTE, when, and how the flush was handled.</summary>
    public required string Window { get; init; }
    public required string Detail { get; init; }
    /// <summary>How to replay: the run's full configuration is in the result's "config"; this is the command line.</summary>
    public required string Replay { get; init; }
}

/// <summary>
/// The coherence oracle. It gives every frame a content version (each simulated store makes a new
/// one), remembers what each writeback captured and what the backing store holds, and checks every
/// access that hits a TLB entry against the page tables. It reports:
/// lost_write — a page dropped clean while memory held a store the backing store never got;
/// stale_access_after_free — a load or store through a stale TLB entry to a frame that was freed or
/// now holds another page; write_after_protect — a store through a stale writable entry after
/// mprotect(PROT_READ)/munmap/madvise(DONTNEED) of that page returned.
/// </summary>
public sealed class Oracle
{
    private readonly Sim _sim;
    private readonly long[] _content;
    private readonly long[] _captured;
    private readonly StoreRecord[] _lastStore;
    private readonly UnmapRecord[] _lastUnmap;
    private readonly Dictionary<long, long> _disk = [];
    private long _version;

    private struct StoreRecord
    {
        public long Time;
        public long Vpn;
        public int Cpu;
        public int Mm;
        public int Pid;
        public bool Stale;
    }

    private struct UnmapRecord
    {
        public long Time;
        public int Cpu;
        public int Pid;
        public bool Deferred;
    }

    public Oracle(Sim sim)
    {
        _sim = sim;
        int n = sim.Memory.NrFrames;
        _content = new long[n];
        _captured = new long[n];
        _lastStore = new StoreRecord[n];
        _lastUnmap = new UnmapRecord[n];
    }

    public List<Violation> Violations { get; } = [];

    public long LostWrites { get; private set; }

    public long StaleAccessesAfterFree { get; private set; }

    public long WritesAfterProtect { get; private set; }

    /// <summary>Set when the run should stop at the first violation.</summary>
    public bool StopOnViolation { get; init; }

    /// <summary>Recent events touching frames/mms involved in violations (for --stop-on-violation).</summary>
    public EventLog Log { get; } = new(4096);

    private static long DiskKey(int file, long index) => ((long)file << 40) | index;

    private long Disk(int file, long index) => _disk.TryGetValue(DiskKey(file, index), out long v) ? v : 0;

    // ---- page life cycle -------------------------------------------------------------------------

    /// <summary>A page-cache page was filled from the backing store.</summary>
    public void PageRead(int frame, int file, long index)
    {
        _content[frame] = Disk(file, index);
        _captured[frame] = -1;
    }

    /// <summary>writeback starts: the I/O will carry the frame's current content.</summary>
    public void WritebackStart(long t, int frame)
    {
        _captured[frame] = _content[frame];
        Log.Add(t, -1, frame, -1, "writeback start (clear_page_dirty_for_io)");
    }

    /// <summary>end_page_writeback: the backing store now holds what was captured.</summary>
    public void WritebackEnd(long t, int frame, int file, long index)
    {
        _disk[DiskKey(file, index)] = _captured[frame];
        Log.Add(t, -1, frame, -1, "writeback end");
    }

    /// <summary>try_to_unmap_one cleared a PTE of the frame; <paramref name="deferred"/>: the flush was deferred.</summary>
    public void Unmapped(Exec ex, int frame, int mm, long vpn, bool deferred)
    {
        _lastUnmap[frame] = new UnmapRecord { Time = ex.Now, Cpu = ex.Cpu.Id, Pid = ex.Task.Pid, Deferred = deferred };
        Log.Add(ex.Now, ex.Cpu.Id, frame, mm, $"PTE of 0x{vpn << 12:x} cleared by {ex.Task.Comm} ({(deferred ? "flush deferred" : "flushed")})");
    }

    /// <summary>Reclaim is freeing a clean page of (file, index): data newer than the backing store is lost.</summary>
    public void PageFreed(Exec ex, int frame, int file, long index)
    {
        Log.Add(ex.Now, ex.Cpu.Id, frame, -1, $"freed by {ex.Task.Comm}");
        long disk = Disk(file, index);
        if (_content[frame] != disk)
        {
            StoreRecord s = _lastStore[frame];
            Report(ViolationKind.LostWrite, ex.Now, ex.Cpu.Id, ex.Task.Comm, s.Mm, s.Vpn, frame,
                $"store by pid {s.Pid} on CPU {s.Cpu} at {Sec(s.Time)} s{(s.Stale ? " through a stale TLB entry" : "")} is newer than the backing store (content v{_content[frame]}, written back v{disk}); the page was freed clean");
        }
    }

    // ---- accesses ----------------------------------------------------------------------------------

    /// <summary>A store landed in <paramref name="frame"/> (through a fill or a cached entry).</summary>
    public void Store(Exec ex, MmStruct mm, long vpn, int frame, bool stale)
    {
        _content[frame] = ++_version;
        _lastStore[frame] = new StoreRecord { Time = ex.Now, Vpn = vpn, Cpu = ex.Cpu.Id, Mm = mm.Id, Pid = ex.Task.Pid, Stale = stale };
        if (stale)
        {
            Log.Add(ex.Now, ex.Cpu.Id, frame, mm.Id, $"store to 0x{vpn << 12:x} by {ex.Task.Comm} through a stale TLB entry");
        }
    }

    /// <summary>
    /// An access hit a cached TLB entry mapping (mm, vpn) to <paramref name="frame"/>. Returns true
    /// if the entry is stale (the page table no longer maps that frame there).
    /// </summary>
    public bool CheckHit(Exec ex, MmStruct mm, long vpn, int frame, bool write, bool entryWritable)
    {
        uint pte = mm.PageTable.Get(vpn);
        bool valid = Pte.IsPresent(pte) && Pte.Frame(pte) == frame && (!write || Pte.IsWrite(pte));
        if (valid)
        {
            return false;
        }
        Vma? vma = mm.FindVma(vpn);
        ref Page p = ref _sim.Memory.Pages[frame];
        bool freed = (p.Flags & PageFlags.Buddy) != 0;
        bool reused = !freed && (vma?.File is null || p.Mapping != vma.File.Id || p.Index != vma.PgOff + (vpn - vma.Start));
        if (freed || reused)
        {
            Report(ViolationKind.StaleAccessAfterFree, ex.Now, ex.Cpu.Id, ex.Task.Comm, mm.Id, vpn, frame,
                $"{(write ? "store" : "load")} through a stale TLB entry to a frame {(freed ? "already freed" : $"now holding page {p.Index} of file {p.Mapping}")}");
        }
        else if (write && entryWritable && (vma is null || !vma.Writable))
        {
            Report(ViolationKind.WriteAfterProtect, ex.Now, ex.Cpu.Id, ex.Task.Comm, mm.Id, vpn, frame,
                $"store through a stale writable TLB entry after {(vma is null ? "munmap" : "mprotect(PROT_READ)")} returned at {Sec(vma?.ProtectedAt ?? 0)} s");
        }
        return true;
    }

    private void Report(ViolationKind kind, long t, int cpu, string task, int mm, long vpn, int frame, string detail)
    {
        if (StopOnViolation && Violations.Count > 0)
        {
            return; // the run ends after this event; only the first violation counts
        }
        switch (kind)
        {
            case ViolationKind.LostWrite:
                LostWrites++;
                break;
            case ViolationKind.StaleAccessAfterFree:
                StaleAccessesAfterFree++;
                break;
            case ViolationKind.WriteAfterProtect:
                WritesAfterProtect++;
                break;
        }
        Log.Add(t, cpu, frame, mm, $"VIOLATION {Name(kind)}: {detail}");
        if (Violations.Count >= 1000)
        {
            return; // counts go on; the list keeps the first thousand
        }
        UnmapRecord u = _lastUnmap[frame];
        string window = u.Time == 0 && u.Pid == 0
            ? "no unmap of this frame recorded"
            : $"try_to_unmap_one by pid {u.Pid} on CPU {u.Cpu} at {Sec(u.Time)} s cleared the PTE and {(u.Deferred ? $"deferred the flush ({_sim.Policy.Name})" : "flushed at once")}";
        RunConfig c = _sim.Config;
        Violations.Add(new Violation
        {
            Kind = Name(kind),
            TimeS = t / 1e9,
            TimeNs = t,
            Cpu = cpu,
            Task = task,
            Mm = mm,
            Address = $"0x{vpn << 12:x}",
            Frame = frame,
            Window = window,
            Detail = detail,
            Replay = $"shootdown run --machine {c.Machine} --nodes {c.Nodes} --cpus-per-node {c.CpusPerNode} --memory {c.MemoryBytes * c.ScaleDivisor} --scale 1/{c.ScaleDivisor} --workload {c.Workload} --policy {c.PolicyName} --seed {c.Seed} --oracle on --stop-on-violation",
        });
        if (StopOnViolation)
        {
            _sim.RequestStop();
        }
    }

    public static string Name(ViolationKind k) => k switch
    {
        ViolationKind.LostWrite => "lost_write",
        ViolationKind.StaleAccessAfterFree => "stale_access_after_free",
        _ => "write_after_protect",
    };

    private static string Sec(long ns) => (ns / 1e9).ToString("0.000000", CultureInfo.InvariantCulture);
}

/// <summary>A ring of recent oracle-relevant events (unmaps, flush decisions, writeback, frees, stale stores).</summary>
public sealed class EventLog(int capacity)
{
    private readonly (long T, int Cpu, int Frame, int Mm, string What)[] _ring = new (long, int, int, int, string)[capacity];
    private long _n;

    public void Add(long t, int cpu, int frame, int mm, string what)
    {
        _ring[_n % _ring.Length] = (t, cpu, frame, mm, what);
        _n++;
    }

    /// <summary>The last <paramref name="count"/> events concerning <paramref name="frame"/> or <paramref name="mm"/>, oldest first.</summary>
    public IEnumerable<string> Relevant(int frame, int mm, int count)
    {
        var list = new List<string>();
        long first = Math.Max(0, _n - _ring.Length);
        for (long i = _n - 1; i >= first && list.Count < count; i--)
        {
            var e = _ring[i % _ring.Length];
            if (e.Frame == frame || (mm >= 0 && e.Mm == mm && e.Frame < 0))
            {
                list.Add($"{e.T / 1e9,14:0.000000000} s  cpu {(e.Cpu < 0 ? "-" : e.Cpu.ToString(CultureInfo.InvariantCulture)),3}  frame {e.Frame,9}  {e.What}");
            }
        }
        list.Reverse();
        return list;
    }
}
