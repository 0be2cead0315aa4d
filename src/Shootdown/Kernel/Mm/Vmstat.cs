using System.Numerics;
using Shootdown.Hardware;
using Shootdown.Kernel.Sched;

namespace Shootdown.Kernel.Mm;

/// <summary>
/// The zone counters of this workload's paths (4.0's <c>enum zone_stat_item</c>, with the index
/// each has there: its place in <c>zone->vm_stat[]</c> and in the global <c>vm_stat[]</c>, eight
/// to a 64-byte line).
/// </summary>
public enum ZoneStatItem
{
    NrFreePages = 0,
    NrAllocBatch = 1,
    NrInactiveFile = 4,
    NrActiveFile = 5,
    NrFileMapped = 9,
    NrFilePages = 10,
    NrIsolatedFile = 23,
    NrPagesScanned = 27,
    NumaHit = 28,
    NumaMiss = 29,
    NumaForeign = 30,
    NumaLocal = 32,
    NumaOther = 33,
}

/// <summary>
/// mm/vmstat.c's per-CPU differentials (Linux 4.0). A zone counter update goes to this CPU's
/// <c>vm_stat_diff</c> in the zone's per-CPU pageset; once the differential passes the pageset's
/// <c>stat_threshold</c> it is folded into the zone's counter and the global one — two locked adds
/// on lines every CPU that updates the counter writes (<c>zone_page_state_add</c>).
/// <c>__mod_zone_page_state</c> folds when |diff + delta| exceeds the threshold and leaves 0;
/// <c>__inc_zone_state</c> / <c>__dec_zone_state</c> fold once the diff passes it and leave half the
/// threshold on the other side (the overstep), so a run of increments folds every 1.5 x threshold.
/// <para>
/// The threshold (<c>calculate_normal_threshold</c>) is 2 x fls(online CPUs) x (1 + fls(the zone's
/// managed memory in 128 MiB units)), at most 125: 96 on the 48-CPU machine's 16 GiB zones (their
/// managed pages are short of 16 GiB by the node's memmap, a 64th), 56 on the 8-CPU one's Normal
/// zone. While the node's kswapd is awake the node's zones use <c>calculate_pressure_threshold</c>
/// instead, so that the drift of NR_FREE_PAGES cannot hide a breach of the min watermark: the
/// distance between the low and the min watermarks over the online CPUs, at least 1 and at most
/// 125 — 10 on the 48-CPU machine's 16 GiB zones; a zone whose CPUs' drift at the normal threshold
/// cannot reach that distance has no <c>percpu_drift_mark</c> and keeps the normal threshold (the
/// 8-CPU machine's Normal zone: 8 x 56 = 448 against 452). <c>kswapd_try_to_sleep</c> sets the
/// normal threshold before kswapd sleeps and the pressure one when it wakes; kswapd's first wake
/// follows such a sleep too. So on the larger machine under reclaim a counter folds about five
/// times as often per update as on the smaller one (10 against 56), into lines that cross sockets; the counters are updated per page, or per
/// batch of a few dozen pages, in the allocator, the page cache, the rmap and the LRU, several of
/// them under <c>lru_lock</c>, <c>zone->lock</c> or <c>tree_lock</c>, whose hold the fold lengthens.
/// </para>
/// <para>
/// A fold costs its two locked adds (<see cref="CostModel.LockAcquireNs"/> each) and the transfer of
/// each line from the CPU that wrote it last (<see cref="CacheLines"/>): the zone's line lives on the
/// zone's node, the global array on node 0. Reads of a counter line — the allocator's watermark
/// check reads NR_FREE_PAGES and NR_ALLOC_BATCH in the zone's first line on every allocation — cost
/// a transfer when another CPU has written the line since this CPU last read it.
/// </para>
/// <para>
/// The lines' other users are charged too: the last writer's next fold after other CPUs read the
/// zone's first line must take it back from them (an invalidation, charged as a transfer from the
/// last reader), and after kswapd wrote every CPU's pageset (the new threshold) each CPU's next
/// update fetches its pageset line back from kswapd's CPU.
/// </para>
/// <para>
/// Costs are what <see cref="Mod"/>, <see cref="Inc"/>, <see cref="Dec"/> and <see cref="ReadLine0"/>
/// return; the caller adds them to the time of the section it is in (a lock's hold, the task's
/// system time). The counters' values themselves are kept exactly by the model's own fields (the
/// zone's free and LRU counts); this class holds only the differentials, to know when a fold comes.
/// </para>
/// </summary>
public sealed class ZoneStats
{
    /// <summary>Items tracked, in slot order.</summary>
    public static readonly ZoneStatItem[] Items = Enum.GetValues<ZoneStatItem>();

    /// <summary>Lines of <c>vm_stat[]</c> (the items up to NUMA_OTHER, 8 per line).</summary>
    public const int LinesPerArray = 5;

    /// <summary>calculate_normal_threshold's and calculate_pressure_threshold's cap.</summary>
    public const int MaxThreshold = 125;

    private static readonly int[] SlotOf = BuildSlots();

    private readonly CacheLines _lines;
    private readonly CostModel _costs;

    /// <summary>The machine's CPUs, whose current constants (<see cref="Cpu.Costs"/>) a fold is charged at; null: the constants given at construction.</summary>
    public Cpu[]? Cpus { get; set; }
    private readonly int _zones;
    private readonly int _cpus;
    private readonly int[] _zoneNode;

    /// <summary>vm_stat_diff[item] of each CPU's pageset of each zone: [(cpu * zones + zone) * items + slot].</summary>
    private readonly int[] _diff;

    /// <summary>stat_threshold of each zone (every CPU's pageset of a zone holds the same).</summary>
    private readonly int[] _threshold;

    private readonly int[] _normal;
    private readonly int[] _pressure;

    /// <summary>The CPU that last wrote each line of each zone's vm_stat (-1: none yet): [zone * LinesPerArray + line].</summary>
    private readonly int[] _zoneLineOwner;

    /// <summary>Writes to each zone's first line so far, and the count each CPU had seen at its last read: [cpu * zones + zone].</summary>
    private readonly long[] _line0Writes;

    private readonly long[] _line0Seen;

    /// <summary>Since when each node's kswapd has been awake with the pressure threshold set (-1: asleep), and the closed stretches' total.</summary>
    private readonly long[] _pressureSince;

    private long _pressureNs;

    /// <summary>The CPU that last wrote each line of the global vm_stat (-1: none yet).</summary>
    private readonly int[] _globalLineOwner = new int[LinesPerArray];

    /// <summary>The last CPU other than the writer to read each zone's first line since its last write (-1: none).</summary>
    private readonly int[] _line0Reader;

    /// <summary>For each CPU's pageset of each zone, the CPU that wrote it last if that was not the CPU itself (kswapd setting a threshold; -1: its own): [cpu * zones + zone].</summary>
    private readonly int[] _pagesetWriter;

    /// <summary>What each zone's NR_PAGES_SCANNED holds after the folds so far (zone_page_state: the folded value, not the CPUs' differentials).</summary>
    private readonly long[] _foldedPagesScanned;

    public ZoneStats(Zone[] zones, int nrCpus, CacheLines lines, CostModel costs)
    {
        _lines = lines;
        _costs = costs;
        _zones = zones.Length;
        _cpus = nrCpus;
        _zoneNode = new int[_zones];
        _pressureSince = new long[zones.Length == 0 ? 0 : zones.Max(z => z.Node) + 1];
        Array.Fill(_pressureSince, -1);
        _threshold = new int[_zones];
        _normal = new int[_zones];
        _pressure = new int[_zones];
        for (int z = 0; z < _zones; z++)
        {
            Zone zone = zones[z];
            _zoneNode[z] = zone.Node;
            _normal[z] = NormalThreshold(ManagedPages((long)zone.Frames * zone.SizingScale), nrCpus);
            // refresh_zone_stat_thresholds sets percpu_drift_mark only where the CPUs' drift at the
            // normal threshold could exceed the low-min distance; set_pgdat_percpu_threshold skips a
            // zone without one, which keeps the normal threshold under pressure too. The distance is
            // the full-size zone's (a scaled zone may cap its watermarks to stay usable).
            // (low = min + min / 4, as Memory sets the marks; a zone built without its full-size
            // min, in tests, uses its own marks.)
            long distance = zone.WmarkMinFullSize > 0 ? zone.WmarkMinFullSize / 4 : zone.WmarkLow - zone.WmarkMin;
            _pressure[z] = (long)nrCpus * _normal[z] > distance ? PressureThreshold(distance, nrCpus) : _normal[z];
            _threshold[z] = _normal[z];
        }
        _diff = new int[_cpus * _zones * Items.Length];
        _zoneLineOwner = new int[_zones * LinesPerArray];
        Array.Fill(_zoneLineOwner, -1);
        Array.Fill(_globalLineOwner, -1);
        _line0Writes = new long[_zones];
        _line0Seen = new long[_cpus * _zones];
        Array.Fill(_line0Seen, -1);
        _line0Reader = new int[_zones];
        Array.Fill(_line0Reader, -1);
        _pagesetWriter = new int[_cpus * _zones];
        Array.Fill(_pagesetWriter, -1);
        _foldedPagesScanned = new long[_zones];
    }

    /// <summary>
    /// A zone's managed pages: its present pages less the struct pages that describe them (the
    /// node's memmap, 64 bytes per 4 KiB page, reserved at boot in the node's own memory).
    /// </summary>
    public static long ManagedPages(long presentPages) => presentPages - presentPages / 64;

    /// <summary>zone_page_state(zone, NR_PAGES_SCANNED): what the folds have put in the zone's counter (at least 0).</summary>
    public long FoldedPagesScanned(int zone) => Math.Max(0, _foldedPagesScanned[zone]);

    /// <summary>Folds so far (each two locked adds).</summary>
    public long Folds { get; private set; }

    /// <summary>Time in folds so far: the locked adds and the lines' transfers (ns).</summary>
    public long FoldNs { get; private set; }

    /// <summary>Time reading counter lines other CPUs had written (ns).</summary>
    public long ReadNs { get; private set; }

    /// <summary>Node-time (ns, summed over nodes) up to <paramref name="now"/> that a node's zones spent at kswapd's pressure threshold.</summary>
    public long PressureNs(long now)
    {
        long ns = _pressureNs;
        foreach (long since in _pressureSince)
        {
            if (since >= 0)
            {
                ns += now - since;
            }
        }
        return ns;
    }

    /// <summary>
    /// calculate_normal_threshold: 2 x fls(<paramref name="cpus"/>) x (1 + fls(<paramref name="managedPages"/>
    /// in 128 MiB units)), at most 125.
    /// </summary>
    public static int NormalThreshold(long managedPages, int cpus)
    {
        long mem = managedPages >> (27 - 12);
        return (int)Math.Min(MaxThreshold, 2L * Fls(cpus) * (1 + Fls(mem)));
    }

    /// <summary>calculate_pressure_threshold: (low - min watermark) / <paramref name="cpus"/>, at least 1, at most 125.</summary>
    public static int PressureThreshold(long watermarkDistance, int cpus) => (int)Math.Clamp(watermarkDistance / cpus, 1, MaxThreshold);

    /// <summary>The NR_*_FILE counter of the file LRU list a page is on (NR_ACTIVE_FILE or NR_INACTIVE_FILE).</summary>
    public static ZoneStatItem LruItem(bool active) => active ? ZoneStatItem.NrActiveFile : ZoneStatItem.NrInactiveFile;

    /// <summary>The stat_threshold <paramref name="zone"/>'s pagesets have now.</summary>
    public int Threshold(int zone) => _threshold[zone];

    /// <summary>
    /// set_pgdat_percpu_threshold for <paramref name="node"/>'s zones: the pressure threshold while its
    /// kswapd is awake (<paramref name="pressure"/>), the normal one when it goes to sleep.
    /// Returns what <paramref name="cpu"/> spends writing every CPU's pageset line of each zone whose
    /// threshold changes.
    /// </summary>
    public long SetNodeThreshold(int node, bool pressure, int cpu, long now = 0)
    {
        if (pressure && _pressureSince[node] < 0)
        {
            _pressureSince[node] = now;
        }
        else if (!pressure && _pressureSince[node] >= 0)
        {
            _pressureNs += now - _pressureSince[node];
            _pressureSince[node] = -1;
        }
        long cost = 0;
        for (int z = 0; z < _zones; z++)
        {
            int t = pressure ? _pressure[z] : _normal[z];
            if (_zoneNode[z] != node || _threshold[z] == t)
            {
                continue;
            }
            _threshold[z] = t;
            for (int c = 0; c < _cpus; c++)
            {
                cost += _lines.Transfer(c, cpu);
                _pagesetWriter[c * _zones + z] = c == cpu ? -1 : cpu;
            }
        }
        return cost;
    }

    /// <summary>__mod_zone_page_state: returns the fold's cost if the differential passed the threshold.</summary>
    public long Mod(int cpu, int zone, ZoneStatItem item, int delta)
    {
        if (delta == 0)
        {
            return 0;
        }
        long cost = PagesetBack(cpu, zone);
        ref int d = ref _diff[((cpu * _zones) + zone) * Items.Length + SlotOf[(int)item]];
        int x = d + delta;
        int t = _threshold[zone];
        if (x > t || x < -t)
        {
            d = 0;
            return cost + Fold(cpu, zone, item, x);
        }
        d = x;
        return cost;
    }

    /// <summary>__inc_zone_state: folds the differential plus half the threshold once it passes the threshold.</summary>
    public long Inc(int cpu, int zone, ZoneStatItem item)
    {
        long cost = PagesetBack(cpu, zone);
        ref int d = ref _diff[((cpu * _zones) + zone) * Items.Length + SlotOf[(int)item]];
        int t = _threshold[zone];
        if (++d > t)
        {
            int amount = d + (t >> 1);
            d = -(t >> 1);
            return cost + Fold(cpu, zone, item, amount);
        }
        return cost;
    }

    /// <summary>__dec_zone_state: the mirror of <see cref="Inc"/>.</summary>
    public long Dec(int cpu, int zone, ZoneStatItem item)
    {
        long cost = PagesetBack(cpu, zone);
        ref int d = ref _diff[((cpu * _zones) + zone) * Items.Length + SlotOf[(int)item]];
        int t = _threshold[zone];
        if (--d < -t)
        {
            int amount = d - (t >> 1);
            d = t >> 1;
            return cost + Fold(cpu, zone, item, amount);
        }
        return cost;
    }

    /// <summary>
    /// A read of <paramref name="zone"/>'s first counter line (NR_FREE_PAGES, NR_ALLOC_BATCH): a
    /// transfer from its last writer if it wrote the line after this CPU's last read.
    /// </summary>
    public long ReadLine0(int cpu, int zone)
    {
        ref long seen = ref _line0Seen[cpu * _zones + zone];
        long writes = _line0Writes[zone];
        if (seen == writes)
        {
            return 0;
        }
        seen = writes;
        int owner = _zoneLineOwner[zone * LinesPerArray];
        if (owner < 0 || owner == cpu)
        {
            return 0;
        }
        _line0Reader[zone] = cpu;
        long cost = _lines.Transfer(owner, cpu);
        ReadNs += cost;
        return cost;
    }

    /// <summary>The CPU's pageset line back from kswapd's CPU, if kswapd wrote it (a new threshold) since this CPU's last update.</summary>
    private long PagesetBack(int cpu, int zone)
    {
        ref int w = ref _pagesetWriter[cpu * _zones + zone];
        if (w < 0)
        {
            return 0;
        }
        long cost = _lines.Transfer(w, cpu);
        w = -1;
        return cost;
    }

    /// <summary>zone_page_state_add of <paramref name="amount"/>: the zone's counter and the global one, each a locked add on its line.</summary>
    private long Fold(int cpu, int zone, ZoneStatItem item, int amount)
    {
        int line = (int)item >> 3;
        ref int zoneOwner = ref _zoneLineOwner[zone * LinesPerArray + line];
        long cost = 2 * (Cpus is null ? _costs : Cpus[cpu].Costs).LockAcquireNs;
        if (line == 0 && zoneOwner == cpu && _line0Reader[zone] >= 0)
        {
            // The writer's own line, shared since with the CPUs that read it: taking it back
            // invalidates their copies.
            cost += _lines.Transfer(_line0Reader[zone], cpu);
        }
        cost += _lines.Take(ref zoneOwner, cpu, _zoneNode[zone]) + _lines.Take(ref _globalLineOwner[line], cpu, 0);
        if (line == 0)
        {
            _line0Writes[zone]++;
            _line0Seen[cpu * _zones + zone] = _line0Writes[zone];
            _line0Reader[zone] = -1;
        }
        if (item == ZoneStatItem.NrPagesScanned)
        {
            _foldedPagesScanned[zone] += amount;
        }
        Folds++;
        FoldNs += cost;
        return cost;
    }

    /// <summary>The kernel's fls: the 1-based position of the highest set bit, 0 for 0.</summary>
    private static int Fls(long x) => x <= 0 ? 0 : BitOperations.Log2((ulong)x) + 1;

    private static int[] BuildSlots()
    {
        int[] s = new int[64];
        Array.Fill(s, -1);
        for (int i = 0; i < Items.Length; i++)
        {
            s[(int)Items[i]] = i;
        }
        return s;
    }
}
