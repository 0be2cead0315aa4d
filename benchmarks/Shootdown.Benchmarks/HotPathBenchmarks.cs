using BenchmarkDotNet.Attributes;
using Shootdown.Engine;
using Shootdown.Hardware;
using Shootdown.Kernel.Mm;

namespace Shootdown.Benchmarks;

/// <summary>
/// One CPU's second-level TLB as the simulator configures it (1536 entries, 12-way, so 128 sets).
/// Every benchmark does <see cref="Ops"/> operations per invocation, so the reported figure is per
/// operation.
/// </summary>
[MemoryDiagnoser]
public class TlbBenchmarks
{
    private const int Ops = 1024;
    private const int Mm = 1;

    private Tlb _tlb = null!;
    private long[] _hitVpns = null!;
    private long _nextVpn;

    [GlobalSetup]
    public void Setup()
    {
        _tlb = new Tlb(1536, 12);
        // 1024 consecutive vpns land 8 per set in 128 sets, so all of them stay resident (12 ways).
        _hitVpns = new long[Ops];
        for (int i = 0; i < Ops; i++)
        {
            _hitVpns[i] = i;
            _tlb.Fill(Mm, i, i + 1, Tlb.EntryWritable);
        }
        // Streaming vpns start far above the resident ones, so they always miss.
        _nextVpn = 1L << 20;
    }

    /// <summary>A TLB hit: find the entry and refresh its LRU stamp.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public int LookupHit()
    {
        Tlb tlb = _tlb;
        long[] vpns = _hitVpns;
        int acc = 0;
        for (int i = 0; i < vpns.Length; i++)
        {
            acc += tlb.Lookup(Mm, vpns[i]);
        }
        return acc;
    }

    /// <summary>A reader streaming through new pages: every lookup misses and is followed by a fill (LRU eviction).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public int LookupMissAndFill()
    {
        Tlb tlb = _tlb;
        long vpn = _nextVpn;
        int acc = 0;
        for (int i = 0; i < Ops; i++, vpn++)
        {
            if (tlb.Lookup(Mm, vpn) < 0)
            {
                acc += tlb.Fill(Mm, vpn, (int)vpn, Tlb.EntryWritable);
            }
        }
        _nextVpn = vpn;
        return acc;
    }

    /// <summary>
    /// INVLPG of a resident entry. The entry is refilled right after, so that every invocation flushes
    /// entries that are present; the figure therefore includes one Fill (compare LookupMissAndFill).
    /// </summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public int FlushOne()
    {
        Tlb tlb = _tlb;
        long[] vpns = _hitVpns;
        int acc = 0;
        for (int i = 0; i < vpns.Length; i++)
        {
            long vpn = vpns[i];
            if (tlb.FlushOne(Mm, vpn))
            {
                acc += tlb.Fill(Mm, vpn, (int)vpn + 1, Tlb.EntryWritable);
            }
        }
        return acc;
    }

    /// <summary>INVLPG of an entry this CPU does not hold (the usual case on a shootdown target).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public int FlushOneMiss()
    {
        Tlb tlb = _tlb;
        long vpn = 1L << 30;
        int acc = 0;
        for (int i = 0; i < Ops; i++, vpn++)
        {
            if (tlb.FlushOne(Mm, vpn))
            {
                acc++;
            }
        }
        return acc;
    }

    /// <summary>CR3 reload: a generation bump, O(1) whatever the TLB size.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public void FlushAll()
    {
        Tlb tlb = _tlb;
        for (int i = 0; i < Ops; i++)
        {
            tlb.FlushAll();
        }
    }
}

/// <summary>
/// The simulator's event heap in its steady state: one pending event per CPU (48 on gorman-4node);
/// each operation pops the earliest event and pushes that CPU's next completion.
/// </summary>
[MemoryDiagnoser]
public class EventQueueBenchmarks
{
    private const int Ops = 1024;
    private const int HeapSize = 48;

    private EventQueue _queue = null!;
    private long[] _deltas = null!;

    [GlobalSetup]
    public void Setup()
    {
        _queue = new EventQueue(HeapSize * 2 + 16);
        var rng = new Random(42);
        for (int c = 0; c < HeapSize; c++)
        {
            _queue.Push(rng.Next(1, 10_000), c);
        }
        // Step lengths from tens of ns (TLB hit) to tens of us (IPI wait), fixed so runs are comparable.
        _deltas = new long[Ops];
        for (int i = 0; i < Ops; i++)
        {
            _deltas[i] = rng.Next(10, 50_000);
        }
    }

    [Benchmark(OperationsPerInvoke = Ops)]
    public long PopPush()
    {
        EventQueue q = _queue;
        long[] deltas = _deltas;
        long acc = 0;
        for (int i = 0; i < deltas.Length; i++)
        {
            q.TryPop(out long time, out int cpu);
            q.Push(time + deltas[i], cpu);
            acc += cpu;
        }
        return acc;
    }
}

/// <summary>
/// A page-cache radix tree for a reader streaming through a file larger than memory: pages enter at
/// the head of a resident window and are evicted at its tail; indices wrap around a 4 GiB file.
/// Per-operation figures; leaves are recycled through the <see cref="LeafPool"/>, so the steady
/// state allocates nothing.
/// </summary>
[MemoryDiagnoser]
public class RadixMapBenchmarks
{
    private const int Ops = 1024;
    private const long FilePages = 1L << 20;      // 4 GiB file of 4 KiB pages
    private const long FileMask = FilePages - 1;
    private const long Window = 1L << 16;         // 256 MiB resident

    private RadixMap _map = null!;
    private long _head;

    [GlobalSetup]
    public void Setup()
    {
        _map = new RadixMap(new LeafPool(), FilePages);
        for (long i = 0; i < Window; i++)
        {
            _map.Set(i, (uint)(i + 1));
        }
        _head = Window;
    }

    /// <summary>add_to_page_cache at the head plus delete_from_page_cache at the tail, per page.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public void SetAndClear()
    {
        RadixMap map = _map;
        long head = _head;
        for (int i = 0; i < Ops; i++, head++)
        {
            map.Set(head & FileMask, (uint)head | 1);
            map.Clear((head - Window) & FileMask);
        }
        _head = head;
    }

    /// <summary>A page-cache lookup that hits, streaming through the resident window.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public uint Get()
    {
        RadixMap map = _map;
        long idx = _head - Window;
        uint acc = 0;
        for (int i = 0; i < Ops; i++, idx++)
        {
            acc += map.Get(idx & FileMask);
        }
        return acc;
    }

    /// <summary>
    /// The page-cache churn with mm/workingset.c's checks (session 44): before each insert and
    /// after each delete, whether the 64-slot radix tree node still holds a page
    /// (<see cref="RadixMap.AnyInBlock"/>), as <c>Workingset.PageInserting</c> and
    /// <c>PageDeleted</c> ask; compare with <see cref="SetAndClear"/>.
    /// </summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public int SetAndClearWithNodeChecks()
    {
        RadixMap map = _map;
        long head = _head;
        int emptied = 0;
        for (int i = 0; i < Ops; i++, head++)
        {
            long add = head & FileMask;
            long del = (head - Window) & FileMask;
            emptied += map.AnyInBlock(add, 6) ? 0 : 1;
            map.Set(add, (uint)head | 1);
            map.Clear(del);
            emptied += map.AnyInBlock(del, 6) ? 0 : 1;
        }
        _head = head;
        return emptied;
    }

    /// <summary>The whole lifecycle of one page: insert, look up, evict.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public uint SetGetClear()
    {
        RadixMap map = _map;
        long head = _head;
        uint acc = 0;
        for (int i = 0; i < Ops; i++, head++)
        {
            map.Set(head & FileMask, (uint)head | 1);
            acc += map.Get((head - (Window / 2)) & FileMask);
            map.Clear((head - Window) & FileMask);
        }
        _head = head;
        return acc;
    }
}

/// <summary>The flush decision's mask work: accumulate mm_cpumask into a flush mask, then test for remote CPUs.</summary>
[MemoryDiagnoser]
public class CpumaskBenchmarks
{
    private const int Ops = 1024;

    private Cpumask _target = null!;
    private Cpumask _source = null!;
    private Cpumask _onlySelf = null!;
    private int _self;

    [Params(48, 256)]
    public int NrCpus { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _target = new Cpumask(NrCpus);
        _source = new Cpumask(NrCpus);
        for (int c = 0; c < NrCpus; c += 3)
        {
            _source.Set(c);
        }
        // The common "only this CPU ran the mm" case: AnyBut must scan every word to answer false.
        _self = NrCpus - 1;
        _onlySelf = new Cpumask(NrCpus);
        _onlySelf.Set(_self);
    }

    /// <summary>cpumask_or.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public void Or()
    {
        Cpumask target = _target;
        Cpumask source = _source;
        for (int i = 0; i < Ops; i++)
        {
            target.Or(source);
        }
    }

    /// <summary>cpumask_any_but on a mask holding only the calling CPU (worst case: full scan).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public int AnyBut()
    {
        Cpumask mask = _onlySelf;
        int self = _self;
        int acc = 0;
        for (int i = 0; i < Ops; i++)
        {
            if (mask.AnyBut(self))
            {
                acc++;
            }
        }
        return acc;
    }

    /// <summary>Or followed by AnyBut, as a flush decision does.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public int OrThenAnyBut()
    {
        Cpumask target = _target;
        Cpumask source = _source;
        int self = _self;
        int acc = 0;
        for (int i = 0; i < Ops; i++)
        {
            target.Or(source);
            if (target.AnyBut(self))
            {
                acc++;
            }
        }
        return acc;
    }
}

/// <summary>One whole lru-file-mmap-read simulation on gorman-4node under the vanilla policy, per invocation.</summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 1, iterationCount: 3)]
public class WholeRunBenchmarks
{
    private RunConfig _config = null!;

    [Params(16, 256, 1024)]
    public int ScaleDivisor { get; set; }

    [GlobalSetup]
    public void Setup() => _config = RunConfig.Create(machine: "gorman-4node", scaleDivisor: ScaleDivisor, policy: "vanilla");

    [Benchmark]
    public long Run()
    {
        var sim = new Sim(_config);
        sim.Run();
        return sim.PagesDone;
    }
}

/// <summary>
/// One whole lru-file-readonce simulation (read(2) with readahead, nothing mapped) on brickland3,
/// 120 CPUs, per invocation: the `crosscheck` profile run's cost, at a smaller scale too.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 1, iterationCount: 3)]
public class ReadonceRunBenchmarks
{
    private RunConfig _config = null!;

    [Params(128, 1024)]
    public int ScaleDivisor { get; set; }

    [GlobalSetup]
    public void Setup() => _config = RunConfig.Create(machine: "brickland3", scaleDivisor: ScaleDivisor, workload: "lru-file-readonce", policy: "vanilla");

    [Benchmark]
    public long Run()
    {
        var sim = new Sim(_config);
        sim.Run();
        return sim.PagesDone;
    }
}
