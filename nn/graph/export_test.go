package graph

// FusedChains returns how many fused convolution chains g runs, for the
// tests of package graph_test.
func FusedChains(g *Graph) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.prepare(); err != nil {
		return -1
	}
	return len(g.chains)
}
