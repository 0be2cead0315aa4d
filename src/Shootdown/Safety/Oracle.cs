using System.Globalization;
using System.Text.Json.Serialization;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;

namespace Shootdown.Safety;

public enum ViolationKind
{
    LostWrite,
    StaleAccessAfterFree,
    WriteAfterProtect,
}

/// <summary>
/// One coherence violation, with what is needed to find it again. <see cref="Kind"/> to
/// <see cref="Replay"/> are the run's JSON and the CLI's report; the properties after them give
/// the same facts as data, for tests and library users, and are not serialized.
/// </summary>
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

    /// <summary><see cref="Kind"/> as an enum.</summary>
    [JsonIgnore]
    public ViolationKind Type { get; init; }

    /// <summary>The virtual page number of <see cref="Address"/>.</summary>
    [JsonIgnore]
    public long Vpn { get; init; }

    /// <summary>The name of the run's flush policy (the one <see cref="Window"/> names when the flush was deferred).</summary>
    [JsonIgnore]
    public string Policy { get; init; } = "";

    /// <summary>The last try_to_unmap_one (or unmap of the mapping) of <see cref="Frame"/> before the violation; null if none was recorded.</summary>
    [JsonIgnore]
    public UnmapStep? Unmap { get; init; }

    /// <summary>
    /// The access was a store (stale_access_after_free: false for a load; write_after_protect:
    /// always; lost_write: the lost data came from a store).
    /// </summary>
    [JsonIgnore]
    public bool Write { get; init; }

    /// <summary>
    /// The access went through a stale TLB entry: always for stale_access_after_free and
    /// write_after_protect; for lost_write, whether a store through a stale entry is on record
    /// (<see cref="StaleStore"/>).
    /// </summary>
    [JsonIgnore]
    public bool ThroughStaleEntry { get; init; }

    /// <summary>lost_write: the last store to the frame through a stale TLB entry; null if none was recorded.</summary>
    [JsonIgnore]
    public StoreStep? StaleStore { get; init; }

    /// <summary>lost_write: the content version memory held and the one the backing store holds.</summary>
    [JsonIgnore]
    public long ContentVersion { get; init; }

    /// <inheritdoc cref="ContentVersion"/>
    [JsonIgnore]
    public long BackingVersion { get; init; }

    /// <summary>stale_access_after_free: the frame was free (false: it holds another page, <see cref="ReusedBy"/>).</summary>
    [JsonIgnore]
    public bool FrameFreed { get; init; }

    /// <summary>stale_access_after_free of a reused frame: the (file, page index) it now holds.</summary>
    [JsonIgnore]
    public (int File, long Index)? ReusedBy { get; init; }

    /// <summary>
    /// write_after_protect: when mprotect(PROT_READ) of the page returned (null when the mapping
    /// is gone, i.e. after munmap).
    /// </summary>
    [JsonIgnore]
    public long? ProtectReturnedNs { get; init; }
}

/// <summary>A try_to_unmap_one (or an unmap of the mapping) that cleared a PTE of a frame: when, where, by which task, and whether the flush was deferred.</summary>
public readonly record struct UnmapStep(long TimeNs, int Cpu, int Pid, bool Deferred);

/// <summary>A store through a stale TLB entry: when, where, by which task, into which mm and page.</summary>
public readonly record struct StoreStep(long TimeNs, int Cpu, int Pid, int Mm, long Vpn);

/// <summary>
/// The coherence oracle. It gives every frame a content version (each simulated store makes a new
/// one), remembers what each writeback captured and what the backing store holds, and checks every
/// access that hits a TLB entry against the page tables. It reports:
/// lost_write — a page dropped clean while memory held a store the backing store never got;
/// stale_access_after_free — a load or store through a stale TLB entry to a frame that was freed or
/// now holds another page; write_after_protect — a store through a stale writable entry after
/// mprotect(PROT_READ)/munmap/madvise(DONTNEED) of that page returned.
/// Times are the event times of the steps involved: the simulator applies a step's state changes
/// (an unmap, a free, an access) when the step starts, and the oracle sees them in that order.
/// </summary>
public sealed class Oracle
{
    private readonly Sim _sim;
    private readonly long[] _content;
    private readonly long[] _captured;
    private readonly StoreRecord[] _lastStore;
    private readonly bool[] _copiedAway;
    private readonly Dictionary<long, long> _disk = [];
    private readonly HashSet<int> _writtenFiles = [];
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

    public Oracle(Sim sim)
    {
        _sim = sim;
        int n = sim.Memory.NrFrames;
        _content = new long[n];
        _captured = new long[n];
        _lastStore = new StoreRecord[n];
        _copiedAway = new bool[n];
        // The ring keeps the last million entries (about 56 MB): a lost write's chain — the unmap,
        // the stale stores, the writeback, the free — can span a third of a second of a 1/4 run,
        // some 270,000 entries of other frames, and a history must still show each link.
        Log = new EventLog(1 << 20, n);
    }

    public List<Violation> Violations { get; } = [];

    public long LostWrites { get; private set; }

    public long StaleAccessesAfterFree { get; private set; }

    public long WritesAfterProtect { get; private set; }

    /// <summary>Set when the run should stop at the first violation (of <see cref="StopKind"/>, if set).</summary>
    public bool StopOnViolation { get; init; }

    /// <summary>With <see cref="StopOnViolation"/>: only a violation of this kind stops the run.</summary>
    public ViolationKind? StopKind { get; init; }

    /// <summary>The violation that stopped the run, if one did.</summary>
    public Violation? StoppedBy { get; private set; }

    /// <summary>Recent events touching frames/mms involved in violations (for --stop-on-violation).</summary>
    public EventLog Log { get; }

    private static long DiskKey(int file, long index) => ((long)file << 40) | index;

    private long Disk(int file, long index) =>
        _writtenFiles.Count != 0 && _writtenFiles.Contains(file) && _disk.TryGetValue(DiskKey(file, index), out long v) ? v : 0;

    /// <summary>The content version a frame holds now (each store makes a new one).</summary>
    public long ContentOf(int frame) => _content[frame];

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
        Log.Add(t, -1, frame, -1, LogKind.WritebackStart);
    }

    /// <summary>end_page_writeback: the backing store now holds what was captured.</summary>
    public void WritebackEnd(long t, int frame, int file, long index)
    {
        _disk[DiskKey(file, index)] = _captured[frame];
        _writtenFiles.Add(file);
        Log.Add(t, -1, frame, -1, LogKind.WritebackEnd);
    }

    /// <summary>try_to_unmap_one cleared a PTE of the frame; <paramref name="deferred"/>: the flush was deferred.</summary>
    public void Unmapped(Exec ex, int frame, int mm, long vpn, bool deferred, bool migration = false) =>
        Log.AddUnmap(ex.EventTime, ex.Cpu.Id, ex.Task.Pid, frame, mm, vpn, ex.Task.Comm, deferred, migration);

    /// <summary>
    /// truncate_inode_pages freed the frame of a removed file: its data goes with the file, so there
    /// is no lost-write check; a later access through a stale entry is still an access after free.
    /// </summary>
    public void PageTruncated(Exec ex, int frame) => Log.Add(ex.EventTime, ex.Cpu.Id, frame, -1, LogKind.Free, who: ex.Task.Comm);

    /// <summary>Reclaim is freeing a clean page of (file, index): data newer than the backing store is lost.</summary>
    public void PageFreed(Exec ex, int frame, int file, long index)
    {
        Log.Add(ex.EventTime, ex.Cpu.Id, frame, -1, LogKind.Free, who: ex.Task.Comm);
        long disk = Disk(file, index);
        if (_content[frame] != disk)
        {
            StoreRecord s = _lastStore[frame];
            if (Counted(ViolationKind.LostWrite, frame, ex.Cpu.Id))
            {
                bool stored = !(s.Time == 0 && s.Pid == 0);
                Report(ViolationKind.LostWrite, ex.EventTime, ex.Cpu.Id, ex.Task.Comm, s.Mm, s.Vpn, frame,
                    !stored
                        ? $"content v{_content[frame]} is newer than the backing store (v{disk}); the page was freed clean"
                        : $"store by pid {s.Pid} on CPU {s.Cpu} at {Sec(s.Time)} s through a stale TLB entry is newer than the backing store (content v{_content[frame]}, written back v{disk}); the page was freed clean",
                    new Facts
                    {
                        Write = true,
                        Stale = stored,
                        Store = stored ? new StoreStep(s.Time, s.Cpu, s.Pid, s.Mm, s.Vpn) : null,
                        Content = _content[frame],
                        Backing = disk,
                    });
            }
        }
    }

    /// <summary>
    /// Migration copies <paramref name="oldFrame"/> to <paramref name="newFrame"/>: the new page holds
    /// what the old one holds now; a store to the old frame from now on (through a stale entry) is lost.
    /// </summary>
    public void MigrationCopy(Exec ex, int oldFrame, int newFrame)
    {
        _content[newFrame] = _content[oldFrame];
        _captured[newFrame] = _captured[oldFrame];
        _copiedAway[oldFrame] = true;
        Log.Add(ex.EventTime, ex.Cpu.Id, oldFrame, -1, LogKind.MigrateCopy, newFrame, ex.Task.Comm);
    }

    /// <summary>Migration frees the old frame (after remove_migration_ptes).</summary>
    public void MigrationFreed(Exec ex, int oldFrame)
    {
        _copiedAway[oldFrame] = false;
        Log.Add(ex.EventTime, ex.Cpu.Id, oldFrame, -1, LogKind.Free, who: ex.Task.Comm);
    }

    /// <summary>mprotect(PROT_READ) of (mm, vpn), whose page cache page is <paramref name="frame"/>, is returning.</summary>
    public void Protected(Exec ex, int frame, int mm, long vpn) =>
        Log.Add(ex.EventTime, ex.Cpu.Id, frame, mm, LogKind.Protect, vpn, ex.Task.Comm);

    // ---- accesses ----------------------------------------------------------------------------------

    /// <summary>
    /// A store landed in <paramref name="frame"/> (through a fill or a cached entry). Only stores
    /// through stale entries are recorded in detail: a store through a valid entry dirties the PTE,
    /// so the page cannot be dropped clean with it.
    /// </summary>
    public void Store(Exec ex, MmStruct mm, long vpn, int frame, bool stale)
    {
        _content[frame] = ++_version;
        if (stale)
        {
            _lastStore[frame] = new StoreRecord { Time = ex.EventTime, Vpn = vpn, Cpu = ex.Cpu.Id, Mm = mm.Id, Pid = ex.Task.Pid, Stale = true };
            Log.Add(ex.EventTime, ex.Cpu.Id, frame, mm.Id, LogKind.StaleStore, vpn, ex.Task.Comm);
            if (_copiedAway[frame] && Counted(ViolationKind.LostWrite, frame, ex.Cpu.Id))
            {
                Report(ViolationKind.LostWrite, ex.EventTime, ex.Cpu.Id, ex.Task.Comm, mm.Id, vpn, frame,
                    "store through a stale TLB entry to the old frame of a page migration already copied: the new page never gets it",
                    new Facts
                    {
                        Write = true,
                        Stale = true,
                        Store = new StoreStep(ex.EventTime, ex.Cpu.Id, ex.Task.Pid, mm.Id, vpn),
                        Content = _content[frame],
                    });
            }
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
        bool freed = (p.Flags & PageFlags.Free) != 0;
        bool reused = !freed && (vma?.File is null || p.Mapping != vma.File.Id || p.Index != vma.PgOff + (vpn - vma.Start));
        if (freed || reused)
        {
            if (Counted(ViolationKind.StaleAccessAfterFree, frame, ex.Cpu.Id))
            {
                Report(ViolationKind.StaleAccessAfterFree, ex.EventTime, ex.Cpu.Id, ex.Task.Comm, mm.Id, vpn, frame,
                    $"{(write ? "store" : "load")} through a stale TLB entry to a frame {(freed ? "already freed" : $"now holding page {p.Index} of file {p.Mapping}")}",
                    new Facts { Write = write, Stale = true, Freed = freed, Reused = freed ? null : (p.Mapping, p.Index) });
            }
        }
        else if (write && entryWritable && (vma is null || (!vma.Writable && ex.EventTime >= vma.ProtectedAt)))
        {
            if (Counted(ViolationKind.WriteAfterProtect, frame, ex.Cpu.Id))
            {
                Report(ViolationKind.WriteAfterProtect, ex.EventTime, ex.Cpu.Id, ex.Task.Comm, mm.Id, vpn, frame,
                    $"store through a stale writable TLB entry after {(vma is null ? "munmap" : "mprotect(PROT_READ)")} returned at {Sec(vma?.ProtectedAt ?? 0)} s",
                    new Facts { Write = true, Stale = true, ProtectReturned = vma?.ProtectedAt });
            }
        }
        return true;
    }

    private static LogKind LogKindOf(ViolationKind kind) => kind switch
    {
        ViolationKind.StaleAccessAfterFree => LogKind.StaleAccess,
        ViolationKind.WriteAfterProtect => LogKind.StaleWrite,
        _ => LogKind.Violation,
    };

    private bool Stops(ViolationKind kind) => StopOnViolation && (StopKind is null || StopKind == kind);

    /// <summary>
    /// Counts a violation; returns whether <see cref="Report"/> has anything to do with it (log it,
    /// keep it, stop on it), so that the caller formats its detail only then: a stale entry used
    /// in a loop can give millions of violations.
    /// </summary>
    private bool Counted(ViolationKind kind, int frame, int cpu)
    {
        if (StoppedBy is not null)
        {
            return false; // the run ends after this event; nothing after the stopping violation counts
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
        return Violations.Count < 1000 || Stops(kind) || !Log.IsRepeat(frame, cpu, LogKindOf(kind));
    }

    /// <summary>What a violation's detail says, as data (see the properties of <see cref="Violation"/>).</summary>
    private readonly struct Facts
    {
        public bool Write { get; init; }
        public bool Stale { get; init; }
        public StoreStep? Store { get; init; }
        public long Content { get; init; }
        public long Backing { get; init; }
        public bool Freed { get; init; }
        public (int File, long Index)? Reused { get; init; }
        public long? ProtectReturned { get; init; }
    }

    /// <summary>Logs a counted violation (unless it repeats the frame's last entry), keeps the first thousand, and stops the run if asked.</summary>
    private void Report(ViolationKind kind, long t, int cpu, string task, int mm, long vpn, int frame, string detail, in Facts facts)
    {
        LogKind lk = LogKindOf(kind);
        if (!Log.IsRepeat(frame, cpu, lk))
        {
            Log.Add(t, cpu, frame, mm, lk, vpn, task, text: $"{Name(kind)}: {detail}");
        }
        bool stop = Stops(kind);
        if (Violations.Count >= 1000 && !stop)
        {
            return; // counts go on; the list keeps the first thousand
        }
        UnmapStep? unmap = Log.LastUnmap(frame);
        string window = unmap is not { } u
            ? "no unmap of this frame recorded"
            : $"try_to_unmap_one by pid {u.Pid} on CPU {u.Cpu} at {Sec(u.TimeNs)} s cleared the PTE and {(u.Deferred ? $"deferred the flush ({_sim.Policy.Name})" : "flushed at once")}";
        RunConfig c = _sim.Config;
        var v = new Violation
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
            Replay = $"shootdown run --config RUN.json --stop-on-violation {Name(kind)} (RUN.json: this run's --format json output, or its config as JSON or TOML)",
            Type = kind,
            Vpn = vpn,
            Policy = _sim.Policy.Name,
            Unmap = unmap,
            Write = facts.Write,
            ThroughStaleEntry = facts.Stale,
            StaleStore = facts.Store,
            ContentVersion = facts.Content,
            BackingVersion = facts.Backing,
            FrameFreed = facts.Freed,
            ReusedBy = facts.Reused,
            ProtectReturnedNs = facts.ProtectReturned,
        };
        if (Violations.Count < 1000)
        {
            Violations.Add(v);
        }
        if (stop)
        {
            StoppedBy = v;
            _sim.RequestStop();
        }
    }

    /// <summary>Parses a violation kind as the JSON and the command line spell it.</summary>
    public static ViolationKind ParseKind(string name) => name switch
    {
        "lost_write" => ViolationKind.LostWrite,
        "stale_access_after_free" => ViolationKind.StaleAccessAfterFree,
        "write_after_protect" => ViolationKind.WriteAfterProtect,
        _ => throw new Hardware.ConfigException($"unknown violation kind '{ParseArg.Clip(name)}'; allowed: lost_write, stale_access_after_free, write_after_protect"),
    };

    public static string Name(ViolationKind k) => k switch
    {
        ViolationKind.LostWrite => "lost_write",
        ViolationKind.StaleAccessAfterFree => "stale_access_after_free",
        _ => "write_after_protect",
    };

    private static string Sec(long ns) => (ns / 1e9).ToString("0.000000", CultureInfo.InvariantCulture);
}

/// <summary>What an <see cref="EventLog"/> entry records.</summary>
public enum LogKind : byte
{
    Unmap,
    Free,
    WritebackStart,
    WritebackEnd,
    StaleStore,
    Protect,
    Violation,
    /// <summary>A stale_access_after_free violation (logged once per run of them, like stale stores).</summary>
    StaleAccess,
    /// <summary>A write_after_protect violation (logged once per run of them).</summary>
    StaleWrite,
    /// <summary>try_to_migrate replaced a PTE of the frame by a migration entry.</summary>
    MigrationEntry,
    /// <summary>Migration copied the frame to another (the Vpn field holds the new frame).</summary>
    MigrateCopy,
}

/// <summary>
/// One entry of an <see cref="EventLog"/>. <see cref="Seq"/> numbers the entries in the order they
/// were logged (several can share a <see cref="TimeNs"/>: a free and the lost write it causes).
/// <see cref="Cpu"/> is -1 for I/O (writeback), <see cref="Mm"/> -1 where no mm is concerned;
/// <see cref="Vpn"/> is set for unmaps, stale stores, mprotect and violations; <see cref="Who"/>
/// is the task's name; <see cref="Deferred"/> tells, for an unmap, that the flush was deferred;
/// <see cref="Text"/> is a violation's display text ("kind: detail").
/// </summary>
public readonly record struct LogEntry(long Seq, long TimeNs, int Cpu, int Frame, int Mm, LogKind Kind, long Vpn, string? Who, bool Deferred, string? Text)
{
    /// <summary>The violation this entry reports, if it reports one.</summary>
    public ViolationKind? Violation => Kind switch
    {
        LogKind.Violation => ViolationKind.LostWrite,
        LogKind.StaleAccess => ViolationKind.StaleAccessAfterFree,
        LogKind.StaleWrite => ViolationKind.WriteAfterProtect,
        _ => null,
    };
}

/// <summary>
/// A ring of recent oracle-relevant events (unmaps and their flush decisions, frees, writeback,
/// stores through stale entries, violations). Entries are structs formatted only when printed, so
/// keeping the log costs no allocation per page. A run of stale stores (or stale-access
/// violations) by one CPU to one frame is logged once, at its first store, until some other event
/// concerns the frame: a writer looping over a stale entry would otherwise flood the ring and push
/// out the unmap and the writeback that explain it. Each frame's last unmap is also kept outside
/// the ring (<see cref="LastUnmap"/>), and <see cref="ForFrame"/> still shows it once the ring has
/// overwritten it: the unmap that opened a window can precede the violation by a whole flusher
/// period, more entries than the ring holds (reclaim logs an unmap and a free per mapped page).
/// </summary>
public sealed class EventLog(int capacity, int nrFrames)
{
    private struct Entry
    {
        public long T;
        public long Vpn;
        public int Cpu;
        public int Frame;
        public int Mm;
        public LogKind Kind;
        public bool Flag;
        public string? Who;
        public string? Text;
    }

    /// <summary>A frame's last unmap; <see cref="Seq"/> is its sequence number + 1 (0: none yet).</summary>
    private struct PinnedUnmap
    {
        public long Seq;
        public long T;
        public long Vpn;
        public int Cpu;
        public int Mm;
        public int Pid;
        public bool Migration;
        public bool Deferred;
        public string? Who;
    }

    private readonly Entry[] _ring = new Entry[capacity];
    private readonly PinnedUnmap[] _lastUnmap = new PinnedUnmap[nrFrames];
    private readonly LogKind[] _lastKind = new LogKind[nrFrames];
    private readonly int[] _lastCpu = new int[nrFrames];
    private readonly long[] _lastSeq = new long[nrFrames];
    private readonly bool[] _any = new bool[nrFrames];
    private readonly long[] _counts = new long[Enum.GetValues<LogKind>().Length];
    private long _deferredUnmaps;
    private long _n;

    /// <summary>Whether an entry of <paramref name="kind"/> by <paramref name="cpu"/> would only repeat the frame's last one, which the ring still holds.</summary>
    public bool IsRepeat(int frame, int cpu, LogKind kind)
    {
        if (frame < 0 || !_any[frame] || _lastCpu[frame] != cpu || _n - _lastSeq[frame] >= _ring.Length)
        {
            return false; // (an entry the ring no longer holds repeats nothing a reader of the frame's history sees)
        }
        LogKind last = _lastKind[frame];
        return kind switch
        {
            // A store through a stale entry right after a violation the same store caused adds nothing.
            LogKind.StaleStore => last is LogKind.StaleStore or LogKind.StaleAccess or LogKind.StaleWrite,
            LogKind.StaleAccess or LogKind.StaleWrite => last == kind,
            _ => false,
        };
    }

    public void Add(long t, int cpu, int frame, int mm, LogKind kind, long vpn = 0, string? who = null, bool flag = false, string? text = null)
    {
        if (IsRepeat(frame, cpu, kind))
        {
            return;
        }
        if (frame >= 0)
        {
            _any[frame] = true;
            _lastKind[frame] = kind;
            _lastCpu[frame] = cpu;
            _lastSeq[frame] = _n;
        }
        _ring[_n % _ring.Length] = new Entry { T = t, Cpu = cpu, Frame = frame, Mm = mm, Kind = kind, Vpn = vpn, Who = who, Flag = flag, Text = text };
        _n++;
        _counts[(int)kind]++;
        if (kind == LogKind.Unmap && flag)
        {
            _deferredUnmaps++;
        }
    }

    /// <summary>
    /// Logs try_to_unmap_one clearing a PTE of <paramref name="frame"/> (or replacing it by a
    /// migration entry) by task <paramref name="pid"/>, and keeps it as the frame's last unmap.
    /// </summary>
    public void AddUnmap(long t, int cpu, int pid, int frame, int mm, long vpn, string who, bool deferred, bool migration)
    {
        long seq = _n;
        Add(t, cpu, frame, mm, migration ? LogKind.MigrationEntry : LogKind.Unmap, vpn, who, deferred);
        _lastUnmap[frame] = new PinnedUnmap { Seq = seq + 1, T = t, Vpn = vpn, Cpu = cpu, Mm = mm, Pid = pid, Migration = migration, Deferred = deferred, Who = who };
    }

    /// <summary>The last unmap of <paramref name="frame"/> since the start (whether or not the ring still holds it); null if none.</summary>
    public UnmapStep? LastUnmap(int frame)
    {
        ref PinnedUnmap u = ref _lastUnmap[frame];
        return u.Seq == 0 ? null : new UnmapStep(u.T, u.Cpu, u.Pid, u.Deferred);
    }

    /// <summary>
    /// How many entries of <paramref name="kind"/> were logged since the start, including those the
    /// ring no longer holds (a run of stale stores or stale-access violations counts once).
    /// </summary>
    public long Count(LogKind kind) => _counts[(int)kind];

    /// <summary>How many unmaps with a deferred flush were logged since the start.</summary>
    public long DeferredUnmaps => _deferredUnmaps;

    /// <summary>How many entries were logged since the start (the ring keeps the last <c>capacity</c> of them).</summary>
    public long Logged => _n;

    /// <summary>The sequence number of the oldest entry the ring still holds.</summary>
    public long OldestKept => Math.Max(0, _n - _ring.Length);

    private LogEntry At(long i)
    {
        ref Entry e = ref _ring[i % _ring.Length];
        return new LogEntry(i, e.T, e.Cpu, e.Frame, e.Mm, e.Kind, e.Vpn, e.Who, e.Flag, e.Text);
    }

    /// <summary>Every entry the ring holds, oldest first.</summary>
    public IReadOnlyList<LogEntry> Entries()
    {
        var list = new List<LogEntry>((int)(_n - OldestKept));
        for (long i = OldestKept; i < _n; i++)
        {
            list.Add(At(i));
        }
        return list;
    }

    /// <summary>
    /// The last <paramref name="count"/> entries concerning <paramref name="frame"/>, oldest first:
    /// those the ring holds, preceded by the frame's last unmap if the ring no longer holds it
    /// (no other entry of the frame older than that unmap is kept, so the list has a gap after it).
    /// </summary>
    public IReadOnlyList<LogEntry> ForFrame(int frame, int count = int.MaxValue)
    {
        var list = new List<LogEntry>();
        for (long i = _n - 1; i >= OldestKept && list.Count < count; i--)
        {
            if (_ring[i % _ring.Length].Frame == frame)
            {
                list.Add(At(i));
            }
        }
        ref PinnedUnmap u = ref _lastUnmap[frame];
        if (u.Seq != 0 && u.Seq - 1 < OldestKept && list.Count < count)
        {
            list.Add(new LogEntry(u.Seq - 1, u.T, u.Cpu, frame, u.Mm, u.Migration ? LogKind.MigrationEntry : LogKind.Unmap, u.Vpn, u.Who, u.Deferred, null));
        }
        list.Reverse();
        return list;
    }

    /// <summary>An entry as <see cref="Relevant"/> (and the CLI's --stop-on-violation report) prints it.</summary>
    public static string Format(in LogEntry e) =>
        $"{e.TimeNs / 1e9,14:0.000000000} s  cpu {(e.Cpu < 0 ? "-" : e.Cpu.ToString(CultureInfo.InvariantCulture)),3}  frame {e.Frame,9}  {Describe(e)}";

    private static string Describe(in LogEntry e) => e.Kind switch
    {
        LogKind.Unmap => $"PTE of 0x{e.Vpn << 12:x} cleared by {e.Who} ({(e.Deferred ? "flush deferred" : "flushed")})",
        LogKind.MigrationEntry => $"PTE of 0x{e.Vpn << 12:x} replaced by a migration entry by {e.Who} ({(e.Deferred ? "flush deferred" : "flushed")})",
        LogKind.Free => $"freed by {e.Who}",
        LogKind.WritebackStart => "writeback start (clear_page_dirty_for_io)",
        LogKind.WritebackEnd => "writeback end",
        LogKind.StaleStore => $"store to 0x{e.Vpn << 12:x} by {e.Who} through a stale TLB entry (and any repeats that follow)",
        LogKind.Protect => $"mprotect(PROT_READ) of 0x{e.Vpn << 12:x} by {e.Who} returns",
        LogKind.MigrateCopy => $"migration by {e.Who}: copied to frame {e.Vpn}, migration entries to be replaced (remove_migration_ptes)",
        LogKind.StaleAccess or LogKind.StaleWrite => $"VIOLATION {e.Text} (and any repeats that follow)",
        _ => $"VIOLATION {e.Text}",
    };

    /// <summary>
    /// The last <paramref name="count"/> events concerning <paramref name="frame"/>, oldest first, as
    /// display lines (<see cref="Format"/>); <see cref="ForFrame"/> gives them as data.
    /// </summary>
    public IEnumerable<string> Relevant(int frame, int count) =>
        ForFrame(frame, count).Select(e => Format(e)).ToList();
}
