using Shootdown.Kernel.Sched;

namespace Shootdown.Kernel.Mm;

/// <summary>
/// mm/workingset.c as of Linux 4.0 (refault detection, a528910e12ec, "mm: thrash detection-based file cache sizing", and 449dd6984d0e, 3.15): the
/// costs its bookkeeping adds to reclaim and to the page cache, on the lines it shares.
/// <list type="bullet">
/// <item>workingset_eviction: when reclaim takes a file page out of the page cache
/// (__remove_mapping with <c>reclaimed</c>, the mapping not exiting), it increments its zone's
/// <c>inactive_age</c> (atomic_long_inc_return) to pack into the shadow entry left in the slot —
/// one locked add on one line per zone, which every CPU reclaiming from that zone writes in turn,
/// inside <c>mapping->tree_lock</c>. workingset_activation, from mark_page_accessed's activation of
/// a file page, increments the same counter.</item>
/// <item>page_cache_tree_delete: a radix tree node (RADIX_TREE_MAP_SHIFT 6: 64 slots) whose last
/// page leaves while shadow entries stay is put on <c>workingset_shadow_nodes</c>
/// (list_lru_add, under the per-NUMA-node list lock of the node the radix tree node was allocated
/// on, inside tree_lock); page_cache_tree_insert takes a node off that list (list_lru_del) when a
/// page goes into it again.</item>
/// </list>
/// The list lock, which 4.0 takes inside tree_lock, is charged right after the caller's tree_lock
/// hold (its hold does not lengthen tree_lock's); it is wanted once per 64 pages and nobody waits
/// for it in the seed's workloads.
/// What the model does not keep is the shadow entries themselves: a refault is not told from a
/// first fault (the seed's workloads read each page once), the shrinker that frees shadow-only
/// nodes (shadow_lru_isolate, from shrink_slab) is not run, and truncation does not walk shadow
/// entries (README, "Known gaps").
/// </summary>
public sealed class Workingset
{
    /// <summary>RADIX_TREE_MAP_SHIFT (CONFIG_BASE_SMALL=0): a radix tree node holds 64 slots.</summary>
    public const int RadixNodeShift = 6;

    private readonly Sim _sim;
    private readonly SpinLock[] _shadowNodesLock;

    public Workingset(Sim sim, int nodes)
    {
        _sim = sim;
        // struct list_lru_node is ____cacheline_aligned_in_smp: the lock word and the list head
        // share a line; list_add_tail also writes the previous tail node's link, one more line.
        _shadowNodesLock = new SpinLock[nodes];
        for (int n = 0; n < nodes; n++)
        {
            _shadowNodesLock[n] = new SpinLock($"workingset_shadow_nodes/{n}", dataLines: 1);
        }
    }

    /// <summary>workingset_shadow_nodes' per-node list locks (one per NUMA node).</summary>
    public IReadOnlyList<SpinLock> ShadowNodesLocks => _shadowNodesLock;

    /// <summary>workingset_eviction calls: pages reclaim took out of the page cache leaving a shadow entry.</summary>
    public long Evictions { get; private set; }

    /// <summary>workingset_activation calls (mark_page_accessed activating a file page).</summary>
    public long Activations { get; private set; }

    /// <summary>list_lru_add calls on workingset_shadow_nodes.</summary>
    public long ShadowNodesAdded { get; private set; }

    /// <summary>list_lru_del calls on workingset_shadow_nodes.</summary>
    public long ShadowNodesDeleted { get; private set; }

    /// <summary>Time in the inactive_age increments (locked add and line transfer), ns.</summary>
    public long InactiveAgeNs { get; private set; }

    /// <summary>
    /// workingset_eviction of a page of zone <paramref name="z"/> by <paramref name="cpu"/>:
    /// atomic_long_inc_return(&amp;zone->inactive_age). Returns its cost, which the caller charges
    /// inside tree_lock.
    /// </summary>
    public long Eviction(int cpu, Zone z)
    {
        Evictions++;
        return IncInactiveAge(cpu, z);
    }

    /// <summary>workingset_activation: atomic_long_inc(&amp;zone->inactive_age), charged to the caller.</summary>
    public void Activation(Exec ex, Zone z)
    {
        Activations++;
        ex.Sys += IncInactiveAge(ex.Cpu.Id, z);
    }

    private long IncInactiveAge(int cpu, Zone z)
    {
        long cost = _sim.Costs.LockAcquireNs + _sim.Lines.Take(ref z.InactiveAgeOwner, cpu, z.Node);
        InactiveAgeNs += cost;
        return cost;
    }

    /// <summary>
    /// page_cache_tree_insert's side, called before a page goes into slot <paramref name="index"/>
    /// of <paramref name="file"/>: a radix tree node that held no entry is allocated on the
    /// inserting CPU's node (radix_tree_node_alloc, a slab object); one that held only shadow
    /// entries comes off workingset_shadow_nodes (list_lru_del), charged to <paramref name="ex"/>
    /// right after the caller's tree_lock hold.
    /// </summary>
    public void PageInserting(Exec ex, AddressSpace file, long index)
    {
        if (file.PageCache.AnyInBlock(index, RadixNodeShift))
        {
            return;
        }
        ref RadixNodeState s = ref file.RadixNode((int)(index >> RadixNodeShift));
        if (s.OnShadowList)
        {
            s.OnShadowList = false;
            ShadowNodesDeleted++;
            ex.LockHold(_shadowNodesLock[s.MemNode], 0);
        }
        else if (!s.HasShadows)
        {
            s.MemNode = (sbyte)ex.Cpu.Node;
        }
    }

    /// <summary>
    /// page_cache_tree_delete's side, called after the page at <paramref name="index"/> left
    /// <paramref name="file"/>'s page cache, leaving a shadow entry if <paramref name="shadow"/>
    /// (reclaim of a mapping that is not exiting) or none (truncation, or reclaim while the file is
    /// being truncated). A node left with shadow entries and no page goes on workingset_shadow_nodes
    /// (list_lru_add), charged to <paramref name="ex"/> right after the caller's tree_lock hold.
    /// Without a shadow (truncation, or reclaim of an exiting mapping) the model takes the node to
    /// hold none either and lists nothing. That is where it departs from 4.0, whose final truncation
    /// walks the shadow entries too (clear_exceptional_entry, each under tree_lock), taking a node
    /// off the list (list_lru_del) when its last shadow goes — and lists a node whose last page a
    /// truncation removes while shadows remain; the model walks only the pages, so the nodes it
    /// listed stay listed after the file is gone (README, "Known gaps": shadow entries' lifetime).
    /// </summary>
    public void PageDeleted(Exec ex, AddressSpace file, long index, bool shadow)
    {
        ref RadixNodeState s = ref file.RadixNode((int)(index >> RadixNodeShift));
        s.HasShadows = shadow;
        if (shadow && !s.OnShadowList && !file.PageCache.AnyInBlock(index, RadixNodeShift))
        {
            s.OnShadowList = true;
            ShadowNodesAdded++;
            ex.LockHold(_shadowNodesLock[s.MemNode], 0);
        }
    }
}

/// <summary>What the model keeps of one radix tree node of a file's page cache (64 slots); its pages are the file's <see cref="AddressSpace.PageCache"/> entries.</summary>
public struct RadixNodeState
{
    /// <summary>Whether the node holds shadow entries: set by an eviction, cleared by a truncation (the model keeps no count; without the shrinker they stay).</summary>
    public bool HasShadows;

    /// <summary>Whether the node is on workingset_shadow_nodes.</summary>
    public bool OnShadowList;

    /// <summary>The NUMA node the radix tree node was allocated on (its list_lru_node).</summary>
    public sbyte MemNode;
}
