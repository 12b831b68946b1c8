import type { Rng } from '#core/random';

/** Word lists for the fake totesys data (the published data is fake too; none of it is copied). */

const FIRST = [
  'Jeremie',
  'Deron',
  'Jeanette',
  'Ana',
  'Magdalena',
  'Korey',
  'Raphael',
  'Oswaldo',
  'Brody',
  'Jazmyn',
  'Meda',
  'Imani',
  'Stan',
  'Rigoberto',
  'Tom',
  'Pierre',
  'Mia',
  'Idris',
  'Leila',
  'Hamza',
];
const LAST = [
  'Franey',
  'Beier',
  'Erdman',
  'Glover',
  'Zieme',
  'Marks',
  'Rippin',
  'Bergstrom',
  'Ratke',
  'Kuphal',
  'Cremin',
  'Walsh',
  'Hoeger',
  'Schmidt',
  'Okafor',
  'Nakamura',
  'Silva',
  'Novak',
  'Haddad',
  'Kaur',
];
const COMPANY_SUFFIX = ['Inc', 'LLC', 'and Sons', 'Group', 'Ltd', 'Partners', 'Co'];
export const CITIES = [
  'Leeds',
  'Manchester',
  'Birmingham',
  'Bristol',
  'Liverpool',
  'Glasgow',
  'Cardiff',
  'Dublin',
  'Lyon',
  'Porto',
  'Utrecht',
  'Austin',
  'Portland',
  'Oakland',
  'Aberdeen',
  'Belfast',
];
const COUNTRIES = [
  'United Kingdom',
  'Ireland',
  'France',
  'Portugal',
  'Netherlands',
  'United States',
  'Germany',
  'Spain',
];
const STREETS = [
  'Zieme Mill',
  'Alexie Cliffs',
  'Sincere Fort',
  'Keebler Corner',
  'Alaina Rapid',
  'Brook Lane',
  'Station Road',
  'Mill Street',
  'Canal Walk',
  'Market Square',
];
const DISTRICTS = ['Avon', 'Bedfordshire', 'Buckinghamshire', 'Cheshire', 'Cumbria', 'Kent', 'Surrey'];
export const DEPARTMENTS = [
  'Sales',
  'Purchasing',
  'Production',
  'Dispatch',
  'Finance',
  'Facilities',
  'Communications',
  'HR',
];
const DESIGN_WORDS = [
  'Wooden',
  'Bronze',
  'Granite',
  'Steel',
  'Cotton',
  'Frozen',
  'Soft',
  'Rubber',
  'Plastic',
  'Fresh',
  'Concrete',
  'Metal',
  'Tasty',
  'Handmade',
  'Recycled',
  'Ergonomic',
];

export const pick = <T>(rng: Rng, items: readonly T[]): T => items[rng.int(items.length)] as T;
const digits = (rng: Rng, n: number) => Array.from({ length: n }, () => rng.int(10)).join('');

export function personName(rng: Rng): string {
  return `${pick(rng, FIRST)} ${pick(rng, LAST)}`;
}

export function companyName(rng: Rng): string {
  return `${pick(rng, LAST)} ${pick(rng, COMPANY_SUFFIX)}`;
}

export function addressFields(rng: Rng) {
  return {
    address_line_1: `${1 + rng.int(999)} ${pick(rng, STREETS)}`,
    address_line_2: rng.chance(0.5) ? `Flat ${1 + rng.int(40)}` : null,
    district: rng.chance(0.6) ? pick(rng, DISTRICTS) : null,
    city: pick(rng, CITIES),
    postal_code: `${digits(rng, 5)}-${digits(rng, 4)}`,
    country: pick(rng, COUNTRIES),
    phone: phone(rng),
  };
}

export function phone(rng: Rng): string {
  return `${digits(rng, 4)} ${digits(rng, 6)}`;
}

export function staffFields(rng: Rng, departments: number) {
  const first = pick(rng, FIRST);
  const last = pick(rng, LAST);
  return {
    first_name: first,
    last_name: last,
    department_id: 1 + rng.int(departments),
    email_address: `${first.toLowerCase()}.${last.toLowerCase()}@terrifictotes.com`,
  };
}

export function designFields(rng: Rng, id: number, at: string) {
  const name = pick(rng, DESIGN_WORDS);
  const hash = Array.from({ length: 8 }, () => rng.int(16).toString(16)).join('');
  return {
    design_id: id,
    design_name: name,
    file_location: `/${pick(rng, ['usr', 'opt', 'srv', 'home'])}/${name.toLowerCase()}`,
    file_name: `${name.toLowerCase()}-${hash}.json`,
    created_at: at,
    last_updated: at,
  };
}

const CODE = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
export function itemCode(rng: Rng): string {
  return Array.from({ length: 7 }, () => CODE[rng.int(CODE.length)]).join('');
}
