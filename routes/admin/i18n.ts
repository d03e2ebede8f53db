/**
 * Back-office text in English and Russian, and locale-aware numbers and dates (Intl). The language comes from
 * `?lang=`, then the `bo_lang` cookie, then `Accept-Language`; English is the fallback.
 */

/** Languages the back office speaks. */
export const LANGS = ["en", "ru"] as const;

/** One language. */
export type Lang = typeof LANGS[number];

const TEXT = {
  title: ["Loyalty back office", "Бэк-офис программы лояльности"],
  dashboard: ["Dashboard", "Сводка"],
  directories: ["Directories", "Справочники"],
  access: ["Users and API keys", "Пользователи и ключи API"],
  search: ["Find", "Найти"],
  searchLabel: ["Phone, email, card, external id or last name", "Телефон, email, карта, внешний id или фамилия"],
  signIn: ["Sign in", "Войти"],
  signOut: ["Sign out", "Выйти"],
  company: ["Company", "Компания"],
  login: ["Login", "Логин"],
  password: ["Password", "Пароль"],
  badSignIn: ["Wrong company, login or password", "Неверная компания, логин или пароль"],
  customers: ["Customers", "Клиенты"],
  cards: ["Cards", "Карты"],
  outstanding: ["Points outstanding", "Баллы на счетах"],
  pending: ["Points pending", "Баллы в ожидании"],
  chartTitle: ["Points accrued and spent per day, last 30 days", "Начислено и списано баллов по дням, 30 дней"],
  accrued: ["Accrued", "Начислено"],
  spent: ["Spent", "Списано"],
  results: ["Search results", "Результаты поиска"],
  nothingFound: ["Nothing found", "Ничего не найдено"],
  customer: ["Customer", "Клиент"],
  save: ["Save", "Сохранить"],
  saved: ["Saved", "Сохранено"],
  profile: ["Profile", "Анкета"],
  balances: ["Balances", "Баланс"],
  program: ["Program", "Программа"],
  balance: ["Balance", "Баланс"],
  nextExpiry: ["Next expiry", "Ближайшее сгорание"],
  ledger: ["Ledger", "Движение баллов"],
  history: ["Change history", "История изменений"],
  when: ["When", "Когда"],
  who: ["Who", "Кто"],
  what: ["What", "Что"],
  field: ["Field", "Поле"],
  oldValue: ["Old", "Было"],
  newValue: ["New", "Стало"],
  amount: ["Amount", "Сумма"],
  comment: ["Comment", "Комментарий"],
  order: ["Order", "Заказ"],
  adjust: ["Adjust points", "Изменить баллы"],
  adjustHint: ["Positive to grant, negative to take away", "Положительное — начислить, отрицательное — списать"],
  apply: ["Apply", "Применить"],
  status: ["Status", "Статус"],
  uid: ["Card number", "Номер карты"],
  barcode: ["Barcode", "Штрихкод"],
  type: ["Type", "Тип"],
  actions: ["Actions", "Действия"],
  block: ["Block", "Заблокировать"],
  activate: ["Activate", "Активировать"],
  move: ["Move to customer id", "Перенести клиенту (id)"],
  moveButton: ["Move", "Перенести"],
  issueCard: ["Issue a card", "Выдать карту"],
  uidHint: ["Empty: the next number", "Пусто — следующий номер"],
  issue: ["Issue", "Выдать"],
  groups: ["Customer groups and tiers", "Группы и уровни клиентов"],
  cardTypes: ["Card types", "Типы карт"],
  programs: ["Bonus programs", "Бонусные программы"],
  name: ["Name", "Название"],
  description: ["Description", "Описание"],
  add: ["Add", "Добавить"],
  users: ["Back-office users", "Пользователи бэк-офиса"],
  role: ["Role", "Роль"],
  created: ["Created", "Создан"],
  remove: ["Delete", "Удалить"],
  createUser: ["Create user", "Создать пользователя"],
  oneTimePassword: ["One-time password (shown once)", "Разовый пароль (показан один раз)"],
  apiKeys: ["API keys", "Ключи API"],
  access_: ["Access", "Доступ"],
  label: ["Label", "Метка"],
  revoked: ["Revoked", "Отозван"],
  revoke: ["Revoke", "Отозвать"],
  createKey: ["Create API key", "Создать ключ API"],
  newKey: ["New key (shown once)", "Новый ключ (показан один раз)"],
  notFound: ["Page not found", "Страница не найдена"],
  forbidden: ["Not allowed", "Нет доступа"],
  error: ["Something went wrong", "Что-то пошло не так"],
  back: ["Back", "Назад"],
  none: ["—", "—"],
  yes: ["yes", "да"],
  no: ["no", "нет"],
  language: ["Language", "Язык"],
  more: ["Older entries", "Более ранние записи"],
  readOnly: ["Read only: your role cannot change anything", "Только просмотр: ваша роль не может вносить изменения"],
  noPrograms: ["No bonus programs yet", "Бонусных программ пока нет"],
  skip: ["Skip to content", "К содержимому"],
  id: ["Id", "Id"],
  importTitle: ["Import", "Импорт"],
  connectionsTitle: ["Connections", "Подключения"],
  importUpload: ["Upload a file", "Загрузить файл"],
  importFile: ["File (CSV, JSON, NDJSON or XML)", "Файл (CSV, JSON, NDJSON или XML)"],
  importMax: ["At most", "Не больше"],
  importType: ["What the file holds (type)", "Что в файле (type)"],
  typeCustomers: ["Customers", "Клиенты"],
  typeCards: ["Cards", "Карты"],
  typeBonuses: ["Balances", "Балансы"],
  format: ["Format (format)", "Формат (format)"],
  encoding: ["Encoding (encoding)", "Кодировка (encoding)"],
  delimiter: ["CSV delimiter (delimiter)", "Разделитель CSV (delimiter)"],
  detect: ["Detect", "Определить"],
  fromName: ["From the file name", "По имени файла"],
  preset: ["Shop export (preset)", "Выгрузка магазина (preset)"],
  presetNone: ["None", "Нет"],
  match: ["Match customers by (match)", "Искать клиентов по (match)"],
  bonusProgram: ["Bonus program (bonus_id)", "Бонусная программа (bonus_id)"],
  onlyProgram: ["The only program", "Единственная программа"],
  ignoreUnknown: ["Skip unknown columns (ignore_unknown)", "Пропускать незнакомые столбцы (ignore_unknown)"],
  dryRun: ["Check (dry run)", "Проверить (без записи)"],
  dryRunReport: ["Dry run: nothing was written", "Проверка: ничего не записано"],
  detected: ["Read as", "Прочитано как"],
  columnsMap: ["Columns", "Столбцы"],
  column: ["Column", "Столбец"],
  ignored: ["ignored", "пропущен"],
  created_: ["Created", "Создано"],
  updated_: ["Updated", "Изменено"],
  unchanged: ["Unchanged", "Без изменений"],
  rejected: ["Rejected", "Отклонено"],
  skipped: ["Skipped", "Пропущено"],
  rows: ["Rows", "Строк"],
  line: ["Line", "Строка"],
  reason: ["Reason", "Причина"],
  firstRejects: ["First rejected rows", "Первые отклонённые строки"],
  runImport: ["Run the import", "Выполнить импорт"],
  nothingToRun: ["No row would go in: fix the file and upload it again", "Ни одна строка не войдёт: исправьте файл"],
  pastImports: ["Past imports", "Прошлые импорты"],
  noImports: ["No imports yet", "Импортов пока не было"],
  file: ["File", "Файл"],
  kind: ["Kind", "Вид"],
  run: ["Run", "Импорт"],
  check: ["Check", "Проверка"],
  progress: ["Progress", "Ход импорта"],
  running: ["Running…", "Выполняется…"],
  done: ["Finished", "Завершён"],
  failed: ["Failed", "Ошибка"],
  stalled: [
    "No progress for a while: the service may have restarted; upload the file again to resume",
    "Давно нет продвижения: возможно, сервис перезапускался; загрузите файл снова, импорт продолжится",
  ],
  refresh: ["Refresh", "Обновить"],
  anotherImport: ["Import another file", "Импортировать другой файл"],
  details: ["Details", "Подробности"],
  shops: ["Connected shops", "Подключённые магазины"],
  noConnections: ["No shops connected yet", "Магазины пока не подключены"],
  platform: ["Platform", "Платформа"],
  shop: ["Shop", "Магазин"],
  callbackUrl: ["Callback URL", "Адрес для вебхуков"],
  counts: ["Deliveries by topic", "Доставки по темам"],
  topic: ["Topic", "Тема"],
  received: ["Received", "Получено"],
  processed: ["Processed", "Обработано"],
  duplicate: ["Duplicates", "Повторы"],
  ignored_: ["Ignored", "Пропущено"],
  failed_: ["Failed", "Ошибки"],
  deadLetters: ["Dead letters", "Недоставленные"],
  noDeadLetters: ["No dead letters", "Недоставленных нет"],
  attempts: ["Attempts", "Попыток"],
  retry: ["Retry", "Повторить"],
  retried: ["Put back in the queue", "Возвращено в очередь"],
  editConnection: ["Change", "Изменить"],
  newConnection: ["Connect a shop", "Подключить магазин"],
  secret: ["Webhook secret (write only, never shown)", "Секрет вебхуков (только запись, не показывается)"],
  secretKeep: ["Empty: keep the current secret", "Пусто — оставить прежний"],
  percent: [
    "Accrual, % of the order (percent; empty: the program's rules)",
    "Начисление, % заказа (percent; пусто — правила программы)",
  ],
  minOrder: ["Smallest order that accrues (min_order)", "Минимальный заказ для начисления (min_order)"],
  connectionName: ["Name (name)", "Название (name)"],
  webhooks: ["Webhook deliveries", "Доставка вебхуков"],
  deliveries: ["Deliveries received", "Получено доставок"],
  deliveryFailures: ["Failed (dead letters made)", "Не обработано (в недоставленные)"],
  latestImports: ["Latest imports", "Последние импорты"],
  allImports: ["All imports", "Все импорты"],
  allConnections: ["Connections", "Подключения"],
  accrual_percent: ["Accrual, % (accrual_percent)", "Начисление, % (accrual_percent)"],
  max_spend_percent: ["Payable with points, % (max_spend_percent)", "Оплата баллами, % (max_spend_percent)"],
  pending_days: ["Days pending (pending_days)", "Дней ожидания (pending_days)"],
  lifetime_days: ["Days valid (lifetime_days)", "Дней действия (lifetime_days)"],
  rounding: ["Rounding: down, nearest, up (rounding)", "Округление: down, nearest, up (rounding)"],
  min_accumulated_sales: [
    "Tier from sales of (min_accumulated_sales)",
    "Уровень от суммы покупок (min_accumulated_sales)",
  ],
} as const;

/** A message id. */
export type MessageId = keyof typeof TEXT;

/** Whether a name is a message id (directory settings are labelled by their parameter name). */
export function isMessageId(name: string): name is MessageId {
  return Object.hasOwn(TEXT, name);
}

/** The messages and formats of one language, for one request. */
export interface Texts {
  lang: Lang;
  t: (id: MessageId) => string;
  /** A number (minor units shown with two decimals when `minor`). */
  num: (n: number, options?: { minor?: boolean }) => string;
  /** An instant, in the service's time zone. */
  dateTime: (ms: number) => string;
  /** A local date "YYYY-MM-DD" as the locale writes it. */
  day: (date: string) => string;
}

/** The language of a request: `?lang=`, the cookie, then Accept-Language. */
export function pickLang(query: string | undefined, cookie: string | undefined, accept: string | undefined): Lang {
  for (const v of [query, cookie]) if (v === "en" || v === "ru") return v;
  const ranked = (accept ?? "").split(",").map((part, i) => {
    const [tag, ...params] = part.trim().toLowerCase().split(";");
    const q = params.map((p) => /^q=([\d.]+)$/.exec(p.trim())?.[1]).find((v) => v !== undefined);
    return { tag: tag ?? "", q: q === undefined ? 1 : Number(q), i };
  }).filter((r) => r.tag !== "" && r.q > 0).sort((a, b) => b.q - a.q || a.i - b.i);
  for (const r of ranked) {
    const base = r.tag.split("-")[0];
    if (base === "ru" || base === "en") return base;
  }
  return "en";
}

/** Messages and Intl formats of a language. */
export function textsOf(lang: Lang, timeZone: string): Texts {
  // Intl formatters cost far more to build than to use: one set per language and time zone, made once.
  const cacheKey = `${lang}/${timeZone}`;
  const cached = TEXTS.get(cacheKey);
  if (cached) return cached;
  const texts = buildTexts(lang, timeZone);
  TEXTS.set(cacheKey, texts);
  return texts;
}

/** The texts and formatters made so far, by language and time zone (a handful at most). */
const TEXTS = new Map<string, Texts>();

function buildTexts(lang: Lang, timeZone: string): Texts {
  const locale = lang === "ru" ? "ru-RU" : "en-GB";
  const whole = new Intl.NumberFormat(locale);
  const minor = new Intl.NumberFormat(locale, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const dt = new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short", timeZone });
  const d = new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeZone: "UTC" });
  const idx = lang === "ru" ? 1 : 0;
  return {
    lang,
    t: (id) => TEXT[id][idx],
    num: (n, options) => options?.minor ? minor.format(n / 100) : whole.format(n),
    dateTime: (ms) => dt.format(new Date(ms)),
    day: (date) => d.format(new Date(`${date}T00:00:00Z`)),
  };
}
