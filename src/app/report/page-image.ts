// What the page's HTML needs of an image written beside it, and HTML escaping;
// shared by the page and its sections.

export interface PageImage {
  src: string;
  width: number;
  height: number;
  alt: string;
  /** The SVG version, linked under the image. */
  svg?: string;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
