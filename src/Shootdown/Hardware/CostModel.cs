namespace Shootdown.Hardware;

/// <summary>
/// Every time constant of the simulation, in nanoseconds. One model serves every policy: a policy
/// changes which operations happen, never what an operation costs.
/// Sources (README, "Sources"): bracketed names are public postings and commits; "estimate" = a
/// hardware figure without a public source we could check; "seed" = derived from the seed's
/// published figures ([RFC 2/4], linux-mm, 15 Apr 2015); "own" = our own estimate, chosen inside the
/// published range where one exists and fitted once against the seed's vanilla run (README, "Cost model").
/// </summary>
public sealed record CostModel
{
    // ---- TLB and page walk -------------------------------------------------------------------
    /// <summary>Second-level dTLB entries of a 2015 Xeon (estimate: "~1,536 second-level entries").</summary>
    public int TlbEntries { get; init; } = 1536;

    /// <summary>Associativity of the modelled STLB (estimate; Haswell STLB is 12-way: 1536 = 128 sets x 12).</summary>
    public int TlbWays { get; init; } = 12;

    /// <summary>Page walk that hits in cache (estimate: 34-45 cycles, 13-17 ns).</summary>
    public long PageWalkNs { get; init; } = 15;

    /// <summary>One INVLPG (100-260 cycles, [Molnar] 260 cycles, linux-mm 8 Jun 2015; comment "about 100 ns" of commit a5102476a24b).</summary>
    public long InvlpgNs { get; init; } = 100;

    /// <summary>Full local flush by CR3 write, direct cost only (~100 cycles, [Molnar] 96 cycles); refills are charged by the TLB model.</summary>
    public long FullFlushNs { get; init; } = 50;

    // ---- IPIs ---------------------------------------------------------------------------------
    /// <summary>Sender's cost to post one IPI through the APIC (own; part of the estimated 0.6-0.8 us round trip).</summary>
    public long IpiSendNs { get; init; } = 60;

    /// <summary>Delivery latency, sender to receiver on the same node (own; estimate: 0.6-0.8 us added per single-target shootdown on an idle socket; a loaded 12-core socket is slower).</summary>
    public long IpiLatencySameNodeNs { get; init; } = 1250;

    /// <summary>Delivery latency across sockets, one way (own; estimate: round trips of "several us across sockets": 2 x 3 us + handler here).</summary>
    public long IpiLatencyRemoteNodeNs { get; init; } = 7500;

    /// <summary>Interrupt entry + exit on the receiver with smp_call_function bookkeeping (own; the model's split: receiver cost = entry/exit + flush).</summary>
    public long IrqEntryExitNs { get; init; } = 2500;

    // ---- Faults and the page cache --------------------------------------------------------------
    /// <summary>User time to read one 4 KiB page word by word (seed: 571.38 s user / 168M pages of 640 GiB read).</summary>
    public long UserReadPageNs { get; init; } = 3400;

    /// <summary>Exception entry, VMA lookup and handle_mm_fault overhead of one page fault (own).</summary>
    public long FaultEntryNs { get; init; } = 2500;

    /// <summary>Installing one PTE in fault-around (filemap_map_pages), per page (own).</summary>
    public long MapPtePerPageNs { get; init; } = 100;

    /// <summary>Page allocation from the per-CPU lists, per page (own).</summary>
    public long PageAllocNs { get; init; } = 375;

    /// <summary>Buddy allocator work under zone->lock, per page moved to or from the per-CPU lists (own).</summary>
    public long ZoneLockPerPageNs { get; init; } = 75;

    /// <summary>
    /// Reading one page of a sparse file's hole into the page cache: the filesystem's readpage (block
    /// map lookup, zero-fill), page-cache accounting and cache misses on a loaded 4-socket machine
    /// (fit: the per-page system time of the seed's readers that reclaim does not explain; a bare
    /// 4 KiB memset is ~0.5-1 us).
    /// </summary>
    public long PageZeroNs { get; init; } = 20_000;

    /// <summary>add_to_page_cache, radix tree insert under mapping->tree_lock, per page (own).</summary>
    public long PageCacheInsertNs { get; init; } = 375;

    /// <summary>LRU list manipulation per page under the LRU lock (add, isolate, putback): 2-3 cache misses on struct pages, often remote (own).</summary>
    public long LruPerPageNs { get; init; } = 200;

    /// <summary>Taking an uncontended spinlock (own).</summary>
    public long LockAcquireNs { get; init; } = 20;

    /// <summary>Hand-off of a contended lock between CPUs of one node: the lock's cache line moves (own).</summary>
    public long LockHandoffSameNodeNs { get; init; } = 150;

    /// <summary>Hand-off of a contended lock across sockets (own; a remote cache-line transfer is 2-3x a local one).</summary>
    public long LockHandoffRemoteNodeNs { get; init; } = 400;

    /// <summary>Extra hand-off time per CPU queued on a ticket lock (own; collapse of ticket locks, Boyd-Wickizer et al. 2012).</summary>
    public long LockHandoffPerWaiterNs { get; init; } = 50;

    // ---- Reclaim ----------------------------------------------------------------------------------
    /// <summary>Per page scanned by shrink_page_list: trylock, flag checks, page_referenced rmap walk under i_mmap_rwsem and the PTL (own).</summary>
    public long ScanPageNs { get; init; } = 400;

    /// <summary>try_to_unmap_one without its flush: rmap walk, PTE clear, rss/mapcount updates (own).</summary>
    public long UnmapPageNs { get; init; } = 400;

    /// <summary>__remove_mapping: radix tree delete under mapping->tree_lock (own).</summary>
    public long RemoveMappingNs { get; init; } = 375;

    /// <summary>Freeing one page to the per-CPU lists (own).</summary>
    public long PageFreeNs { get; init; } = 200;

    /// <summary>
    /// Copying one 4 KiB page to another node (migrate_page_copy): a read and a write of 4 KiB,
    /// about twice a 4 KiB memset, which costs ~0.5-1 us (see <see cref="PageZeroNs"/>) (own).
    /// </summary>
    public long CopyPageNs { get; init; } = 1000;

    /// <summary>Submitting one page's writeback I/O (own).</summary>
    public long WritebackSubmitNs { get; init; } = 2000;

    /// <summary>Write I/O completion latency of one page (own: a fast SSD, ~100 us).</summary>
    public long IoLatencyNs { get; init; } = 100_000;

    /// <summary>User time of one store to a page (own: a cache-line write in a loop).</summary>
    public long UserStoreNs { get; init; } = 100;

    // ---- Scheduler ----------------------------------------------------------------------------------
    /// <summary>Context switch, kernel side (own; 1-2 us typical).</summary>
    public long ContextSwitchNs { get; init; } = 1500;

    /// <summary>CFS slice for two runnable tasks on one CPU (sched_min_granularity 0.75 ms x (1 + log2 8)).</summary>
    public long SchedSliceNs { get; init; } = 3_000_000;

    /// <summary>Local timer interrupt period: HZ=250 of a 2015 distribution kernel (estimate).</summary>
    public long TickNs { get; init; } = 4_000_000;

    /// <summary>The published constants of a 2015 4-socket Xeon (gorman-4node).</summary>
    public static CostModel Xeon2015 { get; } = new();

    /// <summary>Names of every constant, for --cost NAME=VALUE.</summary>
    public static IReadOnlyList<string> Names { get; } =
        typeof(CostModel).GetProperties().Where(p => p.CanWrite && (p.PropertyType == typeof(long) || p.PropertyType == typeof(int)))
            .Select(p => p.Name).ToArray();

    /// <summary>Largest value a time constant may take: one simulated second (sums of many constants stay far from overflow).</summary>
    public const long MaxNs = 1_000_000_000;

    /// <summary>Allowed range of one constant, inclusive.</summary>
    public static (long Min, long Max) Range(string name) => name switch
    {
        nameof(TlbEntries) => (1, 1 << 20),
        nameof(TlbWays) => (1, 1 << 10),
        nameof(TickNs) or nameof(SchedSliceNs) => (1_000, MaxNs),
        _ => (0, MaxNs),
    };

    /// <summary>Finds a constant by its name as in this file (PageZeroNs) or as results print it (page_zero_ns).</summary>
    public static string? Canonical(string name) =>
        Names.FirstOrDefault(n => n == name || SnakeCase(n) == name);

    /// <summary>The error for a name that is no constant.</summary>
    public static ConfigException Unknown(string name) =>
        new($"unknown cost constant '{ParseArg.Clip(name)}'; allowed: {string.Join(", ", Names)} (or their snake_case keys, e.g. page_zero_ns)");

    /// <summary>PageZeroNs → page_zero_ns, the key results print.</summary>
    public static string SnakeCase(string name) => System.Text.Json.JsonNamingPolicy.SnakeCaseLower.ConvertName(name);

    /// <summary>
    /// A copy with one constant changed; throws <see cref="ConfigException"/> for unknown names or values
    /// out of range. Constraints between constants are checked by <see cref="Validate"/> once all are set.
    /// </summary>
    public CostModel With(string name, long value)
    {
        string canonical = Canonical(name) ?? throw Unknown(name);
        var (min, max) = Range(canonical);
        if (value < min || value > max)
        {
            throw new ConfigException($"cost constant {canonical} must be in {min}..{max}{(canonical.EndsWith("Ns", StringComparison.Ordinal) ? " ns" : "")}, got {value}", "costs." + SnakeCase(canonical));
        }
        var prop = typeof(CostModel).GetProperty(canonical)!;
        CostModel copy = this with { };
        prop.SetValue(copy, prop.PropertyType == typeof(int) ? (object)(int)value : value);
        return copy;
    }

    /// <summary>Checks the constants that depend on each other; throws <see cref="ConfigException"/>.</summary>
    public void Validate()
    {
        foreach (string n in Names)
        {
            long v = Convert.ToInt64(typeof(CostModel).GetProperty(n)!.GetValue(this), System.Globalization.CultureInfo.InvariantCulture);
            var (min, max) = Range(n);
            if (v < min || v > max)
            {
                throw new ConfigException($"cost constant {n} must be in {min}..{max}, got {v}", "costs." + SnakeCase(n));
            }
        }
        if (TlbEntries % TlbWays != 0 || !System.Numerics.BitOperations.IsPow2(TlbEntries / TlbWays))
        {
            throw new ConfigException(
                $"TlbEntries={TlbEntries} with TlbWays={TlbWays} gives {(double)TlbEntries / TlbWays:0.##} sets; the entries must be the ways times a power of two (e.g. 1536 = 12 x 128)", "costs.tlb_entries");
        }
    }
}
