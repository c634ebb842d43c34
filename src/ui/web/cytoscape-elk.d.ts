// cytoscape-elk ships no types: it is a Cytoscape extension registering the 'elk' layout.
declare module 'cytoscape-elk' {
  const extension: (cy: unknown) => void;
  export default extension;
}
