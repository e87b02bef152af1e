-- 0015: area scope of users and sites (issue 9), and where central reaches each camera's live stream.
--
-- users.areas: the area paths a user may see ("Province/District/Commune", 1 to 3 segments); NULL is the
-- whole province (no restriction). A commune-level user sees only the sites under its paths.
ALTER TABLE users ADD COLUMN areas text[];

-- camera_sites: the administrative place of each site (the map's filters and the users' scope), and the
-- edge agent's live record stream for the central live proxy (NULL: derived from preview_url).
ALTER TABLE camera_sites ADD COLUMN province text CHECK (length(province) BETWEEN 1 AND 200);
ALTER TABLE camera_sites ADD COLUMN district text CHECK (length(district) BETWEEN 1 AND 200);
ALTER TABLE camera_sites ADD COLUMN commune text CHECK (length(commune) BETWEEN 1 AND 200);
ALTER TABLE camera_sites ADD COLUMN live_url text CHECK (length(live_url) BETWEEN 1 AND 500);
