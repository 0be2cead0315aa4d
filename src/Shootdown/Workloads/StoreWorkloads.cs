using Shootdown.Hardware;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;
using Shootdown.Observe;

namespace Shootdown.Workloads;

/// <summary>
/// A thread of a multi-threaded process that stores to (or loads from) a hot set of file pages
/// mapped MAP_SHARED, each step going once over the pages the hot-set function names for the current
/// time. Stores to a read-only VMA fault and are dropped (SIGSEGV); missing pages are faulted in,
/// with direct reclaim when memory is short.
/// </summary>
public sealed class HotSetThread : SimTask
{
    private readonly Vma[] _vmas;
    private readonly Func<long, (long From, long To)>? _window;
    private readonly (long Index, bool Write)[]? _pattern;
    private readonly Vma[]? _patternVma;
    private readonly bool _write;
    private readonly Func<bool> _keepGoing;

    public HotSetThread(int pid, string comm, MmStruct mm, Cpu cpu, Vma[] vmas, Func<long, (long, long)> window, bool write, Func<bool> keepGoing)
        : base(pid, comm, mm, cpu)
    {
        _vmas = vmas;
        _window = window;
        _write = write;
        _keepGoing = keepGoing;
    }

    /// <summary>A thread going over a fixed list of (file index, store?) accesses each step.</summary>
    public HotSetThread(int pid, string comm, MmStruct mm, Cpu cpu, Vma[] vmas, (long Index, bool Write)[] pattern, Func<bool> keepGoing)
        : base(pid, comm, mm, cpu)
    {
        _vmas = vmas;
        _pattern = pattern;
        _keepGoing = keepGoing;
        _patternVma = pattern.Select(p => VmaFor(p.Index)).ToArray();
    }

    private Vma VmaFor(long index)
    {
        foreach (Vma v in _vmas)
        {
            if (v.VpnOf(index) >= 0)
            {
                return v;
            }
        }
        throw new InvalidOperationException($"file index {index} is outside the thread's mappings");
    }

    protected internal override IEnumerable<Yield> Run(Sim sim)
    {
        Exec ex = sim.Exec;
        MmStruct mm = Mm!;
        while (_keepGoing())
        {
            ex.What = _pattern is not null || _write ? "store hot set" : "load hot set";
            var (from, to) = _pattern is not null ? (0L, (long)_pattern.Length) : _window!(ex.Now);
            for (long k = from; k < to; k++)
            {
                long i = k;
                bool write = _write;
                Vma vma;
                if (_pattern is not null)
                {
                    (i, write) = _pattern[k];
                    vma = _patternVma![k];
                }
                else
                {
                    vma = VmaFor(i);
                }
                long vpn = vma.VpnOf(i);
                if (sim.Mmu.Touch(ex, mm, vpn, write) == Mmu.Access.Fault)
                {
                    VmFault r = sim.Fault.HandleMmFault(ex, this, vma, i, write, out IEnumerable<Yield>? wait);
                    if (wait is not null)
                    {
                        yield return Process.Call(wait);
                    }
                    if (r == VmFault.Sigsegv || sim.Mmu.Touch(ex, mm, vpn, write) == Mmu.Access.Fault)
                    {
                        continue; // SIGSEGV in a real program: the store does not happen
                    }
                }
                ex.User += sim.Costs.UserStoreNs;
            }
            yield return Yield.Resched;
        }
    }
}

/// <summary>Shared set-up of the workloads that store: streaming readers for memory pressure, a flusher.</summary>
public abstract class StoreWorkload : Workload
{
    public override bool Stores => true;

    protected int ReadersLeft;

    protected bool Running() => ReadersLeft > 0;

    /// <summary>Threads of the storing process: a quarter of the CPUs, leaving one for the extra thread and one or more for streamers.</summary>
    protected int Writers(Sim sim)
    {
        int n = sim.Cpus.Length;
        if (n < 3)
        {
            throw new ConfigException($"{Name} needs at least 3 CPUs (writers, one more thread of the process, a streaming reader); the machine has {n}");
        }
        return Math.Clamp(n / 4, 1, n - 2);
    }

    /// <summary>Streaming readers on CPUs [first, nr_cpus) reading files of 3 x RAM in all.</summary>
    protected long AddStreamers(Sim sim, int first, long flushPeriodNs)
    {
        int n = sim.Cpus.Length - first;
        if (n <= 0)
        {
            throw new ConfigException($"{Name} needs at least {first + 1} CPUs");
        }
        long filePages = 3 * (long)sim.Memory.NrFrames / n;
        long total = 0;
        for (int c = first; c < sim.Cpus.Length; c++)
        {
            MmStruct mm = sim.CreateMm();
            AddressSpace file = sim.CreateFile($"stream-{c}", filePages);
            var vma = new Vma(mm, LruFileMmapRead.MapBase, filePages, file, 0, writable: false, shared: true) { FaultAroundPages = LruFileMmapRead.FaultAroundPages, Ra = new FileRaState() };
            mm.Vmas.Add(vma);
            file.IMmap.Add(vma);
            long[] hot = sim.MapHotPages(mm, sim.Cpus[c].Node, LruFileMmapRead.HotPages);
            ReadersLeft++;
            sim.AddUserTask(new StreamingReader(sim.NextPid(), $"usemem-{c}", mm, sim.Cpus[c], vma, hot) { Finished = () => ReadersLeft-- },
                startAt: sim.Rng.Next(20_000));
            total += filePages;
        }
        sim.AddKernelThread(new FlusherTask(sim.NextPid(), sim.Cpus[^1], flushPeriodNs), flushPeriodNs);
        return total;
    }

    protected static Vma MapFile(MmStruct mm, AddressSpace file, long startVpn, long pgoff, long pages, bool writable)
    {
        var vma = new Vma(mm, startVpn, pages, file, pgoff, writable, shared: true);
        mm.Vmas.Add(vma);
        file.IMmap.Add(vma);
        return vma;
    }
}

/// <summary>
/// lru-file-mmap-write: the threads of one process (so its mm spans several CPUs) store, each to its
/// own 128 pages of a shared file mapping (few enough to stay in its TLB, so once reclaim has
/// cleared their accessed bits they look idle while the stores keep hitting cached writable
/// entries); a second, single-threaded process loads a 64-page table mapped read-only (its own mm,
/// so the writers' page_mkclean IPIs never reach it and its cached entries outlive the LRU scans);
/// streaming readers on the other CPUs read files of 3 x RAM, so reclaim runs constantly, and a
/// flusher writes the dirty pages back every <see cref="WritebackPeriodNs"/>.
/// </summary>
public sealed class LruFileMmapWrite : StoreWorkload
{
    public const int PagesPerWriter = 128;
    public const int TablePages = 64;

    /// <summary>
    /// The workload sets vm.dirty_writeback_centisecs = 50: the flusher wakes every 0.5 s (a
    /// dirty page written back is write-protected by page_mkclean and refaults young, so a flusher
    /// much faster than the LRU's turnover would keep every hot page looking used).
    /// </summary>
    public const long WritebackPeriodNs = 500_000_000;

    public override string Name => "lru-file-mmap-write";

    public override string Summary => "threads of one process store to 128 pages each of a MAP_SHARED file, another process loads a hot table, under streaming-read pressure and a 0.5 s flusher";

    public override long Setup(Sim sim)
    {
        int writers = Writers(sim);
        MmStruct mm = sim.CreateMm();
        long filePages = writers * (long)PagesPerWriter;
        AddressSpace data = sim.CreateFile("data", filePages);
        AddressSpace table = sim.CreateFile("table", TablePages);
        Vma dataVma = MapFile(mm, data, LruFileMmapRead.MapBase, 0, filePages, writable: true);
        MmStruct readerMm = sim.CreateMm();
        Vma tableVma = MapFile(readerMm, table, 0x10_000, 0, TablePages, writable: false);
        for (int c = 0; c < writers; c++)
        {
            // Contiguous pages, so that they spread over the TLB's sets.
            var pattern = Enumerable.Range(c * PagesPerWriter, PagesPerWriter).Select(i => ((long)i, true)).ToArray();
            sim.AddUserTask(new HotSetThread(sim.NextPid(), $"writer-{c}", mm, sim.Cpus[c], [dataVma], pattern, Running), startAt: sim.Rng.Next(20_000));
        }
        // A second, single-threaded process loads the table (clean pages that stay hot in its TLB).
        sim.AddUserTask(new HotSetThread(sim.NextPid(), "reader-table", readerMm, sim.Cpus[writers], [tableVma], _ => (0, TablePages), write: false, Running), startAt: 0);
        return AddStreamers(sim, writers + 1, WritebackPeriodNs);
    }
}

/// <summary>
/// mprotect-race: the threads of one process store, each to its own 128 one-page shared file
/// mappings (few enough to stay in its TLB, so after reclaim clears their accessed bits they look
/// idle while the stores keep hitting cached writable entries). Another thread of the process tracks
/// writes the way incremental-snapshot tools do: every 5 us it reads /proc/self/pagemap for the
/// region and mprotect(PROT_READ)s each writable mapping whose page is not present, so that the next
/// store to it must fault, and makes it writable again 50 us later. Streaming readers keep reclaim
/// busy. When reclaim has just cleared a hot page's PTE and deferred the flush, the tracker sees the
/// page missing and mprotect finds no PTE to change and flushes nothing; the owner's next store goes
/// through its stale writable entry after mprotect returned: the race fixed in Linux 4.13 by
/// 3ea277194daa. The flusher runs at the kernel's default 5 s interval: page_mkclean every few
/// milliseconds would refault every hot page and keep it young, hiding it from reclaim.
/// </summary>
public sealed class MprotectRace : StoreWorkload
{
    /// <summary>One-page mappings per writer thread: few enough to stay in a 1,536-entry TLB.</summary>
    public const int PagesPerWriter = 128;

    /// <summary>How long a mapping stays read-only before the tracker makes it writable again.</summary>
    public const long ProtectNs = 50_000;

    /// <summary>How often the tracker reads pagemap.</summary>
    public const long PollNs = 5_000;

    /// <summary>vm.dirty_writeback_centisecs left at the kernel default (5 s): see the class comment.</summary>
    public const long WritebackPeriodNs = 5_000_000_000;

    public override string Name => "mprotect-race";

    public override string Summary => "threads store to 128 one-page shared mappings each while a tracker thread mprotects the non-present ones read-only, under streaming-read pressure";

    public override long Setup(Sim sim)
    {
        int writers = Writers(sim);
        int mappings = writers * PagesPerWriter;
        MmStruct mm = sim.CreateMm();
        AddressSpace region = sim.CreateFile("region", mappings);
        var vmas = new Vma[mappings];
        for (int g = 0; g < mappings; g++)
        {
            vmas[g] = MapFile(mm, region, LruFileMmapRead.MapBase + g * 2L, g, 1, writable: true);
        }
        for (int c = 0; c < writers; c++)
        {
            var mine = Enumerable.Range(c * PagesPerWriter, PagesPerWriter).ToArray(); // contiguous, so they spread over the TLB's sets
            var pattern = mine.Select(g => ((long)g, true)).ToArray();
            sim.AddUserTask(new HotSetThread(sim.NextPid(), $"writer-{c}", mm, sim.Cpus[c], mine.Select(g => vmas[g]).ToArray(), pattern, Running),
                startAt: sim.Rng.Next(20_000));
        }
        sim.AddUserTask(new Protector(sim.NextPid(), mm, sim.Cpus[writers], vmas, Running), startAt: 1_000_000);
        return AddStreamers(sim, writers + 1, WritebackPeriodNs);
    }

    /// <summary>
    /// The tracker thread: every <see cref="PollNs"/> it reads /proc/self/pagemap for the region and
    /// calls mprotect(PROT_READ) on each writable mapping whose page is not present, so that the next
    /// store to it must fault; after <see cref="ProtectNs"/> it makes the mapping writable again.
    /// </summary>
    private sealed class Protector(int pid, MmStruct mm, Cpu cpu, Vma[] vmas, Func<bool> keepGoing) : SimTask(pid, "protector", mm, cpu)
    {
        private readonly Queue<(long At, Vma Vma)> _protected = new();

        protected internal override IEnumerable<Yield> Run(Sim sim)
        {
            Exec ex = sim.Exec;
            while (keepGoing())
            {
                ex.What = "mprotect";
                while (_protected.Count > 0 && ex.Now - _protected.Peek().At >= ProtectNs)
                {
                    sim.Mprotect.ChangeProtection(ex, _protected.Dequeue().Vma, writable: true);
                }
                ex.Sys += sim.Costs.FaultEntryNs + vmas.Length * sim.Costs.PageWalkNs; // read(2) of pagemap
                foreach (Vma v in vmas)
                {
                    if (v.Writable && !Pte.IsPresent(Mm!.PageTable.Get(v.Start)))
                    {
                        sim.Mprotect.ChangeProtection(ex, v, writable: false);
                        _protected.Enqueue((ex.Now, v));
                    }
                }
                sim.Sched.WakeAt(this, ex.Now + PollNs);
                yield return Yield.Sleep;
            }
        }
    }
}
